-- Deletes final tasks older than the retention period, with all that is kept beside them.
-- KEYS: none; touches finished, task:{id}, attempts:{id}, evlist:{id}, events:{id} (the old stream), artifacts:{id}, idx:*.
-- ARGV[1] cutoff (ms): tasks finished before it go   ARGV[2] batch size
-- Returns: the number deleted.
local ids = redis.call('ZRANGEBYSCORE', FINISHED, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local tk = task_key(id)
  local f = redis.call('HMGET', tk, 'status', 'type')
  delete_task(id, tk, f[1], f[2])
end
return #ids
