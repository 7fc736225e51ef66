-- Expires the tasks that did not start in time: a task still queued or scheduled when its start
-- deadline ('start_by': its creation, or its last retry by a client, plus start_deadline_seconds)
-- passes ends 'expired' with the error deadline_exceeded (end_waiting in lib/lifecycle.lua). It
-- never runs, and is not retried. A task found running leaves the set; an automatic retry that
-- queues it again puts it back (retry_or_finish).
-- KEYS[1] start_deadlines
-- ARGV[1] now (ms)   ARGV[2] batch size
-- Also touches: task:{id}, queue:{type}, scheduled, outbox, idx:*, finished, evlist:{id}, stats:*;
--   publishes on ev:{id} when the task is followed.
-- Returns: a REPLY.SWEPT for each task expired.
local now = tonumber(ARGV[1])
local out = {}
for _, id in ipairs(call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  call('ZREM', KEYS[1], id)
  local tk = task_key(id)
  local t = read_fields(tk, 'status', 'type', 'attempt', 'tenant', 'start_deadline', 'trace', 'rp', 'w', 'webhook_events')
  if t.status == 'queued' or t.status == 'scheduled' then
    end_waiting(id, tk, t, 'expired', now, {'error', '{"code":"deadline_exceeded","message":"The task did not start within its ' ..
      t.start_deadline .. ' s start deadline."}'})
    out[#out + 1] = REPLY.SWEPT(id, 'expired', t.type, t.trace)
  end
end
return out
