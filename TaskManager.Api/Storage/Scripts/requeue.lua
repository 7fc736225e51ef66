-- Ends a retry's wait: a scheduled task goes back to its queue (end_retry_wait in
-- lib/lifecycle.lua). Run by the Hangfire retry job.
-- KEYS[1] task:{id}
-- ARGV[1] task id   ARGV[2] the attempt the retry follows   ARGV[3] now (ms)
-- Also touches: scheduled, queue:{type}, idx:*, evlist:{id}; publishes on notify, and on ev:{id}
--   when the task is followed.
-- Returns: 1 when queued, 0 when the task no longer waits for that retry (canceled, gone).
local t = read_retry(KEYS[1])
if t.status ~= 'scheduled' or t.attempt ~= ARGV[2] then return 0 end
end_retry_wait(ARGV[1], KEYS[1], t, tonumber(ARGV[3]))
return 1
