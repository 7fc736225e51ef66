-- Creates and queues many tasks at once (POST /api/tasks/batch): one round trip for the batch.
-- The tenant's cap of queued tasks holds across the batch: the tasks past it are refused, the
-- ones before it are created. Each type and model is published once on NOTIFY, and a woken lease
-- that takes a full hand passes the wake-up on, so one message reaches as many workers as there
-- is work for.
-- KEYS: none; touches task:{id}, queue:{type}, idx:{tenant}:queued:*; publishes on notify.
-- ARGV[1] now (ms)   ARGV[2] tenant   ARGV[3] the tenant's cap of queued tasks
-- ARGV[4..] the tasks, TASK_VALUES values each (see common.lua)
-- Returns: {queued count before the batch, then per task 1 (created) or 0 (refused: over the cap)}.
local now, tenant = ARGV[1], ARGV[2]
local cap = tonumber(ARGV[3])
local queued = queued_count(tenant)
local out = {queued}
local submitted, notify = {}, {}
for at = 4, #ARGV, TASK_VALUES do
  if queued < cap then
    local ttype, model = create_task(at, tenant, now)
    queued = queued + 1
    submitted[ttype] = (submitted[ttype] or 0) + 1
    notify[notify_name(ttype, model)] = true
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
for ttype, n in pairs(submitted) do count(STATS_TOTALS, ttype .. ':submitted', n) end
for name in pairs(notify) do redis.call('PUBLISH', NOTIFY, name) end
return out
