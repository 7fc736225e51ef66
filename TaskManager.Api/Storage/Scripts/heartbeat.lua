-- Records a worker's heartbeat and its current GPUs and models, extends the leases of the tasks
-- it still runs, and names the ones it must stop: those being canceled and those no longer its
-- own (finished, timed out, re-queued). A worker that runs nothing may ask for its heartbeat to be
-- held long ('idle'): it is, unless the worker was given a task meanwhile (its running count,
-- kept by the lease, says so); a lease that then gives it a task wakes the held heartbeat.
-- KEYS: none; touches worker:{id}, workers, model:{name}, task:{id}, leases.
-- ARGV[1] worker id   ARGV[2] now (ms)   ARGV[3] lease TTL (ms)   ARGV[4] state JSON (gpus, models)
-- ARGV[5] largest free GPU memory (MB)   ARGV[6] GPU names (lowercase, newline-separated)
-- ARGV[7] loaded models (comma list)   ARGV[8] '1': hold it long if the worker runs nothing
-- ARGV[9], ARGV[10], ...: task id, lease token pairs
-- Returns: {'unknown_worker'} or {'ok', draining ('1' or '0'), idle ('1': it may be held long),
--   task id to stop...}.
local worker = ARGV[1]
local wk = worker_key(worker)
-- 'types' is set at registration: without it, the worker is unknown (or forgotten).
local previous = redis.call('HMGET', wk, 'models', 'draining', 'types', 'running')
if not previous[3] then return {'unknown_worker'} end
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local idle = '0'
if ARGV[8] == '1' and #ARGV == 8 and tonumber(previous[4] or '0') <= 0 and previous[2] ~= '1' then idle = '1' end
redis.call('HSET', wk, 'last_seen', ARGV[2], 'state', ARGV[4], 'gpu_free_mb', ARGV[5],
  'gpu_names', ARGV[6], 'models', ARGV[7], 'idle', idle)
if previous[1] ~= ARGV[7] then set_worker_models(worker, previous[1], ARGV[7]) end
redis.call('ZADD', WORKERS, now, worker)

local out = {'ok', previous[2] or '0', idle}
for i = 9, #ARGV, 2 do
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
