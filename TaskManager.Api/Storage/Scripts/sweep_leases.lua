-- Takes back the tasks of workers that went silent (their lease expired): queued again at once
-- while attempts remain (a crashed worker says nothing against the task), else 'failed'; a task
-- being canceled ends 'canceled'. See sweep_due in common.lua.
-- KEYS: none; touches leases, deadlines, task:{id}, attempts:{id}, queue:{type}, idx:*, finished.
-- ARGV[1] now (ms)   ARGV[2] batch size
-- Returns: {task id, new status, type, traceparent, ...} for each task handled.
local handled = sweep_due(LEASES, tonumber(ARGV[1]), tonumber(ARGV[2]), 'lease_expired', 'failed', true, {},
  function(f) return '{"code":"lease_expired","message":"Worker ' .. (f[3] or '?') .. ' stopped answering."}' end)
local out = {}
for _, t in ipairs(handled) do
  for i = 1, 4 do out[#out + 1] = t[i] end
end
return out
