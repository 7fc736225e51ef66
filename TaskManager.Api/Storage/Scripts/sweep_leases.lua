-- Takes back the tasks of workers that went silent (their lease expired): queued again at once
-- while attempts remain (a crashed worker says nothing against the task), else 'failed'; a task
-- being canceled ends 'canceled' (sweep_due in lib/lifecycle.lua).
-- KEYS[1] leases
-- ARGV[1] now (ms)   ARGV[2] batch size
-- Also touches: what fail.lua touches.
-- Returns: a REPLY.SWEPT for each task moved.
return (sweep_due(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 'lease_expired', 'failed', true, {},
  function(t) return '{"code":"lease_expired","message":"Worker ' .. (t.worker or '?') .. ' stopped answering."}' end))
