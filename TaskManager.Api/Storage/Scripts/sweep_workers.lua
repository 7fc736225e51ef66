-- Forgets workers silent since before the cutoff (long dead); their tasks were taken back by
-- the lease sweep long before.
-- KEYS: none; touches workers, worker:{id}, model:{name}.
-- ARGV[1] cutoff (ms)   ARGV[2] batch size
-- Returns: the number forgotten.
local ids = redis.call('ZRANGEBYSCORE', WORKERS, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  set_worker_models(id, redis.call('HGET', worker_key(id), 'models'), '')
  redis.call('DEL', worker_key(id))
  redis.call('ZREM', WORKERS, id)
end
return #ids
