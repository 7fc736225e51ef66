-- Records many successful results at once (POST /api/workers/{id}/complete): each as
-- complete.lua would, with its last output chunks and log lines, in order, in one round trip.
-- KEYS: none; touches task:{id}, attempts:{id}, evlist:{id}, idx:*, leases, deadlines, finished, worker:{id}, stats:*.
-- ARGV[1] now (ms), then per task: id, lease token, output JSON, number of chunks c, number of
--   log lines l, the c chunks, the l lines.
-- Returns: one complete_task reply per task, in order.
local out = {}
local at = 2
while at <= #ARGV do
  local c, l = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local chunks, lines = {}, {}
  for i = at + 5, at + 4 + c do chunks[#chunks + 1] = ARGV[i] end
  for i = at + 5 + c, at + 4 + c + l do lines[#lines + 1] = ARGV[i] end
  out[#out + 1] = complete_task(ARGV[at], ARGV[at + 1], ARGV[1], ARGV[at + 2], chunks, lines)
  at = at + 5 + c + l
end
return out
