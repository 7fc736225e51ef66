-- Reads one task and, when queued, its 1-based position in its type's queue.
-- KEYS: none; reads task:{id}, queue:{type}.
-- ARGV[1] task id
-- Returns: {task hash as a flat field/value list (with 'queue_position' added) or an empty list,
--   its attempt history (JSON objects)}.
local id = ARGV[1]
local h = redis.call('HGETALL', task_key(id))
local status, ttype
for i = 1, #h, 2 do
  if h[i] == 'status' then status = h[i + 1] elseif h[i] == 'type' then ttype = h[i + 1] end
end
if status == 'queued' then
  local rank = redis.call('ZRANK', queue_key(ttype), id)
  if rank then
    h[#h + 1] = 'queue_position'
    h[#h + 1] = tostring(rank + 1)
  end
end
return {h, redis.call('LRANGE', attempts_key(id), 0, -1)}
