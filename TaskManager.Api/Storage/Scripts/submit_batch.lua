-- Creates and queues many tasks at once (POST /api/tasks/batch): one round trip for the batch.
-- The tenant's cap of queued tasks holds across the batch: the tasks past it are refused, the
-- ones before it are created. Each type and model is published once on notify, and a woken lease
-- that takes a full hand passes the wake-up on, so one message reaches as many workers as there
-- is work for.
-- KEYS: queue:{type} of each type in the batch.
-- ARGV[1] now (ms)   ARGV[2] tenant   ARGV[3] the tenant's cap of queued tasks
-- ARGV[4 ..] the tasks, TASK_VALUES values each (see TASK_VALUE)
-- Also touches: task:{id}, idx:{tenant}:queued:*, stats:totals; publishes on notify.
-- Returns REPLY.SUBMIT_BATCH: queued (the tenant's queued count before the batch), created (per
--   task 1, or 0: refused, over the cap).
local now, tenant = ARGV[1], ARGV[2]
local cap = tonumber(ARGV[3])
local before = queued_count(tenant)
local queued = before
local created, submitted, notify = {}, {}, {}
for at = 4, #ARGV, TASK_VALUES do
  if queued < cap then
    local _, ttype, model = create_task(at, tenant, now)
    queued = queued + 1
    submitted[ttype] = (submitted[ttype] or 0) + 1
    notify[ttype .. '|' .. model] = {ttype, model}
    created[#created + 1] = 1
  else
    created[#created + 1] = 0
  end
end
for ttype, n in pairs(submitted) do count_submitted(ttype, n) end
for _, work in pairs(notify) do notify_work(work[1], work[2]) end
return REPLY.SUBMIT_BATCH(before, created)
