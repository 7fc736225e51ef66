-- Forgets workers silent since before the cutoff (long dead); their tasks were taken back by
-- the lease sweep long before.
-- KEYS[1] workers
-- ARGV[1] cutoff (ms)   ARGV[2] batch size
-- Also touches: worker:{id}, model:{name}.
-- Returns: the number forgotten.
local ids = call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  set_worker_models(id, call('HGET', worker_key(id), 'models'), '')
  call('DEL', worker_key(id))
  call('ZREM', KEYS[1], id)
end
return #ids
