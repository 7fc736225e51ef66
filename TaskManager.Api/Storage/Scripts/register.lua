-- Records a worker and what it offers.
-- KEYS: none; touches worker:{id}, workers.
-- ARGV[1] worker id   ARGV[2] now (ms)   ARGV[3] name   ARGV[4] task types (comma list)
-- ARGV[5] capabilities JSON (backends, models, gpus, capacity, version)
-- Returns: 1.
local wk = worker_key(ARGV[1])
redis.call('HSET', wk, 'id', ARGV[1], 'name', ARGV[3], 'types', ARGV[4], 'info', ARGV[5],
  'registered', ARGV[2], 'last_seen', ARGV[2])
redis.call('ZADD', WORKERS, ARGV[2], ARGV[1])
return 1
