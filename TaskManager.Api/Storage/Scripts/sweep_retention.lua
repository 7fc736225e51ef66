-- Deletes final tasks older than the retention period, with all that is kept beside them.
-- KEYS[1] finished
-- ARGV[1] cutoff (ms): tasks finished before it go   ARGV[2] batch size
-- Also touches: task:{id}, attempts:{id}, evlist:{id}, artifacts:{id}, artifact:{id}:*, idx:*.
-- Returns: the number deleted.
local ids = call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local t = read_fields(task_key(id), 'status', 'type', 'tenant')
  delete_task(id, t.status, t.type, t.tenant)
end
return #ids
