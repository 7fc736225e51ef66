-- Records the Hangfire job that makes a delivery, on the delivery and on its task: the task's next
-- delivery waits for this job (a continuation), so that a task's deliveries go in order.
-- KEYS[1] delivery:{id}   KEYS[2] task:{id}
-- ARGV[1] job id
-- Returns: 1.
call('HSET', KEYS[1], 'job', ARGV[1])
if call('EXISTS', KEYS[2]) == 1 then call('HSET', KEYS[2], 'wh_job', ARGV[1]) end
return 1
