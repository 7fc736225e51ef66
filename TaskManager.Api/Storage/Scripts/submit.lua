-- Creates a task and queues it, then hands it to the waiting lease the caller names (ARGV[19..])
-- or wakes a waiting lease on any API replica. With an idempotency key, a repeat of the same
-- request returns the task the first one created (two racing requests cannot both create one: the
-- script runs alone), and another request under the same key is refused. A tenant at its cap of
-- queued tasks is refused.
-- KEYS: none; touches task:{id}, queue:{type}, idx:{tenant}:queued:*, idem:{tenant}:{key};
--   publishes on notify.
-- ARGV[1] now (ms)   ARGV[2] tenant   ARGV[3] the tenant's cap of queued tasks
-- ARGV[4] idempotency key or ''   ARGV[5] hash of the request   ARGV[6] the key's lifetime (s)
-- ARGV[7..18] the task (see TASK_VALUES in common.lua)
-- ARGV[19..24] a lease waiting on the caller's replica to hand the task to, or none: its
--   worker's id, its most tasks, then the lease TTL (ms), token base, depth and live-since time
--   (ms), as lease_for takes them. The lease runs after the task is stored, as lease.lua would
--   after the publish, with the same rules: the worker may not take the task, and it then stays
--   queued and is published. A task handed over this way is not published: no other lease need
--   wake for it.
-- Returns: {'created'} ({'created', lease_for's answer} when a lease was given) | {'existing',
--   task hash} | {'mismatch'} | {'gone'} (the key's task was deleted) | {'queue_full', queued count}.
local now, tenant = ARGV[1], ARGV[2]

local ik
if ARGV[4] ~= '' then
  ik = idem_key(tenant, ARGV[4])
  local existing = redis.call('GET', ik)
  if existing then
    local bar = string.find(existing, '|', 1, true)
    if string.sub(existing, bar + 1) ~= ARGV[5] then return {'mismatch'} end
    local h = task_hash(string.sub(existing, 1, bar - 1))
    if #h == 0 then return {'gone'} end
    return {'existing', h}
  end
end

local queued = queued_count(tenant)
if queued >= tonumber(ARGV[3]) then return {'queue_full', queued} end

local ttype, model = create_task(7, tenant, now)
if ik then redis.call('SET', ik, ARGV[7] .. '|' .. ARGV[5], 'EX', tonumber(ARGV[6])) end
count(STATS_TOTALS, ttype .. ':submitted', 1)
local handed
if ARGV[19] then
  -- The lease reads the queue: the task's deferred entries go in first.
  flush_writes()
  handed = lease_for(ARGV[19], now, ARGV[20], ARGV[21], ARGV[22], ARGV[23], ARGV[24])
end
-- Still queued unless the lease's answer (its tasks from the 6th entry on) holds it.
local taken = false
for i = 6, #(handed or {}) do
  if handed[i][1] == ARGV[7] then taken = true; break end
end
if not taken then redis.call('PUBLISH', NOTIFY, notify_name(ttype, model)) end
return {'created', handed}
