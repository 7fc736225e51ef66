-- Cancels a task: queued or scheduled ones end at once; a running one becomes 'canceling' and its
-- worker learns of it at its next heartbeat or progress report.
-- KEYS: none; touches task:{id}, queue:{type}, idx:*.
-- ARGV[1] task id   ARGV[2] now (ms)
-- Returns: {'ok', status before, status after} | {'not_found'} | {'conflict', status}.
local id = ARGV[1]
local tk = task_key(id)
local f = redis.call('HMGET', tk, 'status', 'type')
local status, ttype = f[1], f[2]
if not status then return {'not_found'} end
if status == 'canceling' then return {'ok', status, status} end

local to
if status == 'running' then to = 'canceling' else to = 'canceled' end
if not can_move(status, to) then return {'conflict', status} end

redis.call('HSET', tk, 'status', to)
if to == 'canceling' then
  redis.call('HSET', tk, 'cancel_requested', ARGV[2])
else
  redis.call('ZREM', queue_key(ttype), id)
  redis.call('HSET', tk, 'completed', ARGV[2])
end
move_index(id, ttype, status, to)
return {'ok', status, to}
