-- Records a worker's successful result for the current attempt (see complete_task in common.lua).
-- KEYS: none; touches task:{id}, attempts:{id}, idx:*, leases, deadlines, finished, worker:{id}, stats:*.
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] now (ms)   ARGV[4] output JSON
return complete_task(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
