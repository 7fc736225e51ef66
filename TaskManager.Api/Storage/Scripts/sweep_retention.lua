-- Deletes final tasks older than the retention period, with their history and index entries.
-- KEYS: none; touches finished, task:{id}, attempts:{id}, idx:*.
-- ARGV[1] cutoff (ms): tasks finished before it go   ARGV[2] batch size
-- Returns: the number deleted.
local ids = redis.call('ZRANGEBYSCORE', FINISHED, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local tk = task_key(id)
  local f = redis.call('HMGET', tk, 'status', 'type')
  if f[1] then redis.call('ZREM', index_key(f[1], f[2]), id) end
  redis.call('DEL', tk, attempts_key(id))
  redis.call('ZREM', FINISHED, id)
end
return #ids
