-- Ends the attempts whose deadline has passed: a timeout, retried after a backoff while attempts
-- remain, else 'timed_out'; a task being canceled ends 'canceled'. The worker is told on the
-- cancels channel, so it kills the work. See sweep_due in common.lua.
-- KEYS: none; touches deadlines, leases, task:{id}, attempts:{id}, idx:*, scheduled, finished, outbox.
-- ARGV[1] now (ms)   ARGV[2] batch size   ARGV[3] backoff delays (ms, comma list)
-- Returns: {task id, new status, type, traceparent, ...} for each task handled.
local handled = sweep_due(DEADLINES, tonumber(ARGV[1]), tonumber(ARGV[2]), 'timeout', 'timed_out', false,
  split(ARGV[3]), function(f)
    return '{"code":"timeout","message":"The attempt ran past its ' .. f[4] .. ' s timeout."}'
  end)
local out = {}
for _, t in ipairs(handled) do
  redis.call('PUBLISH', CANCELS, t[5])
  for i = 1, 4 do out[#out + 1] = t[i] end
end
return out
