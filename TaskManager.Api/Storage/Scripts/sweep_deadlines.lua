-- Ends the attempts whose deadline has passed: a timeout, retried after a backoff while attempts
-- remain, else 'timed_out'; a task being canceled ends 'canceled'. The worker is told on the
-- cancels channel, so it kills the work. Each task is claimed here atomically, so scheduler
-- replicas never handle one twice.
-- KEYS: none; touches deadlines, leases, task:{id}, attempts:{id}, idx:*, scheduled, finished, outbox.
-- ARGV[1] now (ms)   ARGV[2] batch size   ARGV[3] backoff delays (ms, comma list)
-- Returns: {task id, new status, type, traceparent, ...} for each task handled.
local now = tonumber(ARGV[1])
local delays = split(ARGV[3])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', DEADLINES, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  local tk = task_key(id)
  local f = redis.call('HMGET', tk, 'status', 'type', 'worker', 'timeout')
  if f[1] == 'running' or f[1] == 'canceling' then
    local to = 'canceled'
    local error_json = '{"code":"timeout","message":"The attempt ran past its ' .. f[4] .. ' s timeout."}'
    if f[1] == 'running' then to = failure_target(tk, true, 'timed_out', false) end
    end_unreported(id, tk, f[1], f[2], to, 'timeout', error_json, delays, now)
    redis.call('PUBLISH', CANCELS, f[3])
    out[#out + 1] = id
    out[#out + 1] = to
    out[#out + 1] = f[2]
    out[#out + 1] = redis.call('HGET', tk, 'trace') or ''
  else
    redis.call('ZREM', DEADLINES, id)
  end
end
return out
