-- Takes back the tasks of workers that went silent (their lease expired): queued again at once
-- while attempts remain (a crashed worker says nothing against the task), else 'failed'; a task
-- being canceled ends 'canceled'. Claimed atomically, so scheduler replicas never double up.
-- KEYS: none; touches leases, deadlines, task:{id}, attempts:{id}, queue:{type}, idx:*, finished.
-- ARGV[1] now (ms)   ARGV[2] batch size
-- Returns: {task id, new status, type, traceparent, ...} for each task handled.
local now = tonumber(ARGV[1])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  local tk = task_key(id)
  local f = redis.call('HMGET', tk, 'status', 'type', 'worker')
  if f[1] == 'running' or f[1] == 'canceling' then
    local to = 'canceled'
    local error_json = '{"code":"lease_expired","message":"Worker ' .. (f[3] or '?') .. ' stopped answering."}'
    if f[1] == 'running' then to = failure_target(tk, true, 'failed', true) end
    end_unreported(id, tk, f[1], f[2], to, 'lease_expired', error_json, {}, now)
    out[#out + 1] = id
    out[#out + 1] = to
    out[#out + 1] = f[2]
    out[#out + 1] = redis.call('HGET', tk, 'trace') or ''
  else
    redis.call('ZREM', LEASES, id)
  end
end
return out
