-- Removes a task in a final state with its index entry.
-- KEYS: none; touches task:{id}, idx:{status}:{type}.
-- ARGV[1] task id
-- Returns: {'ok'} | {'not_found'} | {'conflict', status}.
local tk = task_key(ARGV[1])
local f = redis.call('HMGET', tk, 'status', 'type')
if not f[1] then return {'not_found'} end
if not is_final(f[1]) then return {'conflict', f[1]} end
redis.call('DEL', tk)
redis.call('ZREM', index_key(f[1], f[2]), ARGV[1])
return {'ok'}
