-- Removes a task in a final state with its history, events, artifacts and index entries.
-- KEYS: none; touches task:{id}, attempts:{id}, evlist:{id}, events:{id} (the old stream), artifacts:{id}, artifact:{id}:*,
--   idx:{status}:{type}, finished.
-- ARGV[1] task id   ARGV[2] the caller's tenant ('*': any)
-- Returns: {'ok'} | {'not_found'} (also another tenant's task) | {'conflict', status}.
local id = ARGV[1]
local tk = task_key(id)
local f = redis.call('HMGET', tk, 'status', 'type')
if not f[1] or not tenant_allows(tk, ARGV[2]) then return {'not_found'} end
if not is_final(f[1]) then return {'conflict', f[1]} end
delete_task(id, tk, f[1], f[2])
return {'ok'}
