-- Records many successful results at once (POST /api/workers/{id}/complete): each as
-- complete.lua would, in order, in one round trip.
-- KEYS: none; touches task:{id}, attempts:{id}, idx:*, leases, deadlines, finished.
-- ARGV[1] now (ms), then per task: id, lease token, output JSON.
-- Returns: one complete_task reply per task, in order.
local out = {}
for at = 2, #ARGV, 3 do
  out[#out + 1] = complete_task(ARGV[at], ARGV[at + 1], ARGV[1], ARGV[at + 2])
end
return out
