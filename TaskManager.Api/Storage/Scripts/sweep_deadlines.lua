-- Ends the attempts whose deadline has passed: a timeout, retried after a backoff while attempts
-- remain, else 'timed_out'; a task being canceled ends 'canceled' (sweep_due in
-- lib/lifecycle.lua). The worker is told on the cancels channel, so that it kills the work.
-- KEYS[1] deadlines
-- ARGV[1] now (ms)   ARGV[2] batch size   ARGV[3] backoff delays (ms, comma list)
-- Also touches: what fail.lua touches; publishes on cancels.
-- Returns: a REPLY.SWEPT for each task moved.
local handled, workers = sweep_due(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 'timeout', 'timed_out', false,
  split(ARGV[3]), function(t)
    return '{"code":"timeout","message":"The attempt ran past its ' .. t.timeout .. ' s timeout."}'
  end)
for _, worker in ipairs(workers) do call('PUBLISH', CANCELS, worker) end
return handled
