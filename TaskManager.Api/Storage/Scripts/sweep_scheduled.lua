-- Safety net for retries: queues the scheduled tasks whose retry is overdue by more than a
-- grace period (their Hangfire job was lost, e.g. the scheduler died between the outbox and
-- Hangfire). Normally the Hangfire job queues them on time (requeue.lua).
-- KEYS[1] scheduled
-- ARGV[1] now minus the grace (ms)   ARGV[2] batch size   ARGV[3] now (ms)
-- Also touches: task:{id}, queue:{type}, idx:*, evlist:{id}; publishes on notify, and on ev:{id}
--   when the task is followed.
-- Returns: the ids queued.
local out = {}
for _, id in ipairs(call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local tk = task_key(id)
  local t = read_retry(tk)
  if t.status == 'scheduled' then
    end_retry_wait(id, tk, t, tonumber(ARGV[3]))
    out[#out + 1] = id
  else
    call('ZREM', KEYS[1], id)
  end
end
return out
