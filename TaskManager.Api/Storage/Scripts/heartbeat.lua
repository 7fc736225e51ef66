-- Records a worker's heartbeat, extends the leases of the tasks it still runs, and names the
-- ones it must stop: those being canceled and those no longer its own (finished, re-queued).
-- KEYS: none; touches worker:{id}, workers, task:{id}, leases.
-- ARGV[1] worker id   ARGV[2] now (ms)   ARGV[3] lease TTL (ms)   ARGV[4] state JSON (gpus, models)
-- ARGV[5], ARGV[6], ...: task id, lease token pairs
-- Returns: {'unknown_worker'} or {'ok', task id to stop...}.
local wk = worker_key(ARGV[1])
if redis.call('EXISTS', wk) == 0 then return {'unknown_worker'} end
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSET', wk, 'last_seen', ARGV[2], 'state', ARGV[4])
redis.call('ZADD', WORKERS, now, ARGV[1])

local out = {'ok'}
for i = 5, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', task_key(id), 'status', 'token')
  if f[2] and f[2] == token and (f[1] == 'running' or f[1] == 'canceling') then
    redis.call('ZADD', LEASES, 'XX', now + ttl, id)
    if f[1] == 'canceling' then out[#out + 1] = id end
  else
    out[#out + 1] = id
  end
end
return out
