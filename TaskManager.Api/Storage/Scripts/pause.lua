-- Pauses or resumes a task type's queue: paused, tasks are still accepted and wait, and leases
-- give none of that type. Resuming wakes waiting leases.
-- KEYS: none; touches paused; publishes on notify.
-- ARGV[1] task type   ARGV[2] '1' to pause, '0' to resume
-- Returns: 1 when the state changed, 0 when it already was so.
if ARGV[2] == '1' then
  return redis.call('SADD', PAUSED, ARGV[1])
end
local changed = redis.call('SREM', PAUSED, ARGV[1])
if redis.call('ZCARD', queue_key(ARGV[1])) > 0 then redis.call('PUBLISH', NOTIFY, ARGV[1]) end
return changed
