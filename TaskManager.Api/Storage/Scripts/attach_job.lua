-- Remembers the Hangfire job that will retry a task, so that a cancel can delete it.
-- KEYS: none; touches task:{id}.
-- ARGV[1] task id   ARGV[2] attempt   ARGV[3] Hangfire job id
-- Returns: 1, or 0 when the task no longer waits for that retry (the caller deletes the job).
local tk = task_key(ARGV[1])
local f = redis.call('HMGET', tk, 'status', 'attempt')
if f[1] ~= 'scheduled' or f[2] ~= ARGV[2] then return 0 end
redis.call('HSET', tk, 'retry_job', ARGV[3])
return 1
