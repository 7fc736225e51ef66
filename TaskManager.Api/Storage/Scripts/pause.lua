-- Pauses or resumes a task type's queue: paused, tasks are still accepted and wait, and leases
-- give none of that type. Resuming wakes waiting leases.
-- KEYS[1] paused   KEYS[2] queue:{type}
-- ARGV[1] task type   ARGV[2] '1' to pause, '0' to resume
-- Publishes on notify when a resumed queue holds tasks.
-- Returns: 1 when the state changed, 0 when it already was so.
if ARGV[2] == '1' then
  return call('SADD', KEYS[1], ARGV[1])
end
local changed = call('SREM', KEYS[1], ARGV[1])
if call('ZCARD', KEYS[2]) > 0 then notify_work(ARGV[1], '') end
return changed
