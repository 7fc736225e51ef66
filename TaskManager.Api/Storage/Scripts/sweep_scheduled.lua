-- Safety net for retries: queues the scheduled tasks whose retry is overdue by more than a
-- grace period (their Hangfire job was lost, e.g. the scheduler died between the outbox and
-- Hangfire). Normally the Hangfire job queues them on time.
-- KEYS: none; touches scheduled, task:{id}, queue:{type}, idx:*; publishes on notify.
-- ARGV[1] now minus the grace (ms)   ARGV[2] batch size   ARGV[3] now (ms)
-- Returns: the ids queued.
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', SCHEDULED, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local tk = task_key(id)
  local f = redis.call('HMGET', tk, 'status', 'type')
  redis.call('ZREM', SCHEDULED, id)
  if f[1] == 'scheduled' then
    requeue(id, tk, f[2], 'scheduled', ARGV[3])
    out[#out + 1] = id
  end
end
return out
