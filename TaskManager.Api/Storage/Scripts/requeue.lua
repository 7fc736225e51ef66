-- Ends a retry's wait: a scheduled task goes back to its queue. Run by the Hangfire retry job,
-- and by the scheduler's safety sweep for a retry whose job never ran.
-- KEYS: none; touches task:{id}, scheduled, queue:{type}, idx:*; publishes on notify.
-- ARGV[1] task id   ARGV[2] the attempt the retry follows, or '' for any   ARGV[3] now (ms)
-- Returns: 1 when queued, 0 when the task is no longer waiting for that retry (canceled, gone).
local id = ARGV[1]
local tk = task_key(id)
local f = redis.call('HMGET', tk, 'status', 'type', 'attempt')
if f[1] ~= 'scheduled' or (ARGV[2] ~= '' and f[3] ~= ARGV[2]) then return 0 end
assert_move('scheduled', 'queued')
redis.call('ZREM', SCHEDULED, id)
requeue(id, tk, f[2], 'scheduled', ARGV[3])
return 1
