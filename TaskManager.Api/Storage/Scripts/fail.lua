-- Records a failed attempt: queued again while attempts and retryability allow, else final.
-- KEYS: none; touches task:{id}, queue:{type}, idx:*, leases, deadlines; may publish on notify.
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] now (ms)   ARGV[4] error JSON ({code, message})
-- ARGV[5] '1' when the error is retryable   ARGV[6] kind: 'error', 'timeout' or 'canceled'
-- Returns: {'ok', new status} | {'not_found'} | {'stale', status}.
local id = ARGV[1]
local tk = task_key(id)
local status, ttype, err = check_report(tk, ARGV[2])
if err then return err end

local f = redis.call('HMGET', tk, 'attempt', 'max_attempts', 'qs')
local to
if status == 'canceling' then
  to = 'canceled'
elseif ARGV[5] == '1' and ARGV[6] ~= 'canceled' and tonumber(f[1]) < tonumber(f[2]) then
  to = 'queued'
elseif ARGV[6] == 'timeout' then
  to = 'timed_out'
else
  to = 'failed'
end
if not can_move(status, to) then return {'stale', status} end

redis.call('HSET', tk, 'status', to, 'error', ARGV[4])
end_attempt(tk, id)
move_index(id, ttype, status, to)
if to == 'queued' then
  redis.call('HDEL', tk, 'started')
  redis.call('ZADD', queue_key(ttype), f[3], id)
  redis.call('PUBLISH', NOTIFY, ttype)
else
  redis.call('HSET', tk, 'completed', ARGV[3])
end
return {'ok', to}
