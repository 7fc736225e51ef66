-- Cancels a task. Queued or scheduled: canceled at once (a pending retry job is deleted through
-- the outbox). Running: 'canceling', and its worker is told on the cancels channel; the task ends
-- canceled when the worker reports, or when its deadline or lease runs out.
-- KEYS[1] task:{id}
-- ARGV[1] task id   ARGV[2] now (ms)   ARGV[3] the caller's tenant ('*': any)
-- Also touches: queue:{type}, scheduled, outbox, idx:*, finished, evlist:{id}, stats:*; publishes
--   on cancels, and on ev:{id} when the task is followed.
-- Returns REPLY.OUTCOME: 'ok' with the status after, 'not_found' (also another tenant's task) or
--   'conflict' with the status.
local id, now = ARGV[1], tonumber(ARGV[2])
local tk = KEYS[1]
local t = read_fields(tk, 'status', 'type', 'worker', 'tenant', 'attempt', 'rp', 'w', 'webhook_events')
if not t.status or not tenant_allows(t.tenant, ARGV[3]) then return REPLY.OUTCOME('not_found') end
if t.status == 'canceling' then return REPLY.OUTCOME('ok', t.status, t.type) end

local to = 'canceled'
if t.status == 'running' then to = 'canceling' end
if not can_move(t.status, to) then return REPLY.OUTCOME('conflict', t.status) end

if to == 'canceled' then
  end_waiting(id, tk, t, to, now)
  return REPLY.OUTCOME('ok', to, t.type)
end
event_state_of(id, t)
call('HSET', tk, 'status', to, 'cancel_requested', now)
call('PUBLISH', CANCELS, t.worker)
move_listing(id, t.type, t.status, to, tenant_of(t.tenant))
emit_status(id, to)
return REPLY.OUTCOME('ok', to, t.type)
