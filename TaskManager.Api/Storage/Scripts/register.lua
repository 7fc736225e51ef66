-- Records a worker and what it offers, including what placement reads at lease time.
-- KEYS[1] worker:{id}   KEYS[2] workers
-- ARGV[1] worker id   ARGV[2] now (ms)   ARGV[3] name   ARGV[4] task types (comma list)
-- ARGV[5] capabilities JSON (backends, models, gpus, capacity, version)   ARGV[6] capacity
-- ARGV[7] largest free GPU memory (MB)   ARGV[8] GPU names (lowercase, newline-separated)
-- ARGV[9] loaded models (comma list)
-- Also touches: model:{name}.
-- Returns: 1.
call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[3], 'types', ARGV[4], 'info', ARGV[5],
  'registered', ARGV[2], 'last_seen', ARGV[2], 'capacity', ARGV[6], 'gpu_free_mb', ARGV[7],
  'gpu_names', ARGV[8], 'models', ARGV[9], 'running', 0, 'completed', 0, 'failed', 0, 'draining', 0)
set_worker_models(ARGV[1], '', ARGV[9])
call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
