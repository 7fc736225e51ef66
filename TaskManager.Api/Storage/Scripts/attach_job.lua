-- Remembers the Hangfire job that will retry a task, so that a cancel can delete it.
-- KEYS[1] task:{id}
-- ARGV[1] attempt   ARGV[2] Hangfire job id
-- Returns: 1, or 0 when the task no longer waits for that retry (the caller deletes the job).
local t = read_fields(KEYS[1], 'status', 'attempt')
if t.status ~= 'scheduled' or t.attempt ~= ARGV[1] then return 0 end
call('HSET', KEYS[1], 'retry_job', ARGV[2])
return 1
