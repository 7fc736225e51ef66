-- Cancels a task. Queued or scheduled: canceled at once (a pending retry job is deleted through
-- the outbox). Running: 'canceling', and its worker is told on the cancels channel.
-- KEYS: none; touches task:{id}, queue:{type}, scheduled, idx:*, finished, outbox; publishes on cancels.
-- ARGV[1] task id   ARGV[2] now (ms)   ARGV[3] the caller's tenant ('*': any)
-- Returns: {'ok', status after, type, status before} | {'not_found'} (also another tenant's task) |
--   {'conflict', status}.
local id = ARGV[1]
local tk = task_key(id)
local f = redis.call('HMGET', tk, 'status', 'type', 'worker')
local status, ttype = f[1], f[2]
if not status or not tenant_allows(tk, ARGV[3]) then return {'not_found'} end
if status == 'canceling' then return {'ok', status, ttype, status} end

local to
if status == 'running' then to = 'canceling' else to = 'canceled' end
if not can_move(status, to) then return {'conflict', status} end

if to == 'canceling' then
  redis.call('HSET', tk, 'status', to, 'cancel_requested', ARGV[2])
  move_index(id, ttype, status, to)
  redis.call('PUBLISH', CANCELS, f[3])
else
  if status == 'scheduled' then
    redis.call('ZREM', SCHEDULED, id)
    redis.call('RPUSH', OUTBOX, 'delete|' .. id)
  else
    redis.call('ZREM', queue_key(ttype), id)
  end
  finish(id, tk, ttype, status, to, ARGV[2])
end
return {'ok', to, ttype, status}
