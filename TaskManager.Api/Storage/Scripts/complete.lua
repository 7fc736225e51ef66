-- Records a worker's successful result for the current attempt (complete_task in lib/lifecycle.lua).
-- KEYS[1] task:{id}
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] now (ms)   ARGV[4] output JSON
-- Also touches: evlist:{id}, attempts:{id}, idx:*, leases, deadlines, finished, worker:{id},
--   stats:*; publishes on ev:{id} when the task is followed.
-- Returns REPLY.OUTCOME: 'ok' with the new status ('succeeded', or 'canceled' for a task being
--   canceled) and the attempt ended, 'not_found', or 'stale' (the token is not the current
--   attempt's, or the state takes no result).
return complete_task(ARGV[1], ARGV[2], ARGV[3], ARGV[4], {}, {})
