-- Records a worker's heartbeat and its current GPUs and models, extends the leases of the tasks
-- it still runs, and names the ones it must stop: those being canceled and those no longer its
-- own (finished, timed out, re-queued). A worker that runs nothing may ask for its heartbeat to be
-- held long ('idle'): it is, unless the worker was given a task meanwhile (its running count,
-- kept by the lease, says so); a lease that then gives it a task wakes the held heartbeat.
-- KEYS[1] worker:{id}   KEYS[2] workers   KEYS[3] leases
-- ARGV[1] worker id   ARGV[2] now (ms)   ARGV[3] lease TTL (ms)   ARGV[4] state JSON (gpus, models)
-- ARGV[5] largest free GPU memory (MB)   ARGV[6] GPU names (lowercase, newline-separated)
-- ARGV[7] loaded models (comma list)   ARGV[8] '1': hold it long if the worker runs nothing
-- ARGV[9], ARGV[10], ...: task id, lease token pairs
-- Also touches: model:{name}; reads task:{id}.
-- Returns REPLY.HEARTBEAT: code 'ok' or 'unknown_worker', draining ('1' or '0'), idle ('1': it
--   may be held long), stop (task ids).
local worker, wk = ARGV[1], KEYS[1]
-- 'types' is set at registration: without it, the worker is unknown (or forgotten).
local previous = read_fields(wk, 'models', 'draining', 'types', 'running')
if not previous.types then return REPLY.HEARTBEAT('unknown_worker') end
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local idle = '0'
if ARGV[8] == '1' and #ARGV == 8 and tonumber(previous.running or '0') <= 0 and previous.draining ~= '1' then idle = '1' end
call('HSET', wk, 'last_seen', ARGV[2], 'state', ARGV[4], 'gpu_free_mb', ARGV[5], 'gpu_names', ARGV[6], 'models', ARGV[7],
  'idle', idle)
if previous.models ~= ARGV[7] then set_worker_models(worker, previous.models, ARGV[7]) end
call('ZADD', KEYS[2], now, worker)

local stop = {}
for i = 9, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local t = read_fields(task_key(id), 'status', 'token')
  if t.token == token and (t.status == 'running' or t.status == 'canceling') then
    call('ZADD', KEYS[3], 'XX', now + ttl, id)
    if t.status == 'canceling' then stop[#stop + 1] = id end
  else
    stop[#stop + 1] = id
  end
end
return REPLY.HEARTBEAT('ok', previous.draining or '0', idle, stop)
