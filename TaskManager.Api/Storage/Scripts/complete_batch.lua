-- Records many successful results at once (POST /api/workers/{id}/complete): each as
-- complete.lua would, with its last output chunks and log lines, in order; then, when asked,
-- leases the worker its next tasks (lease_for in common.lua), after the results: the whole call
-- is one script.
-- KEYS: none; touches task:{id}, attempts:{id}, evlist:{id}, idx:*, leases, deadlines, finished,
--   worker:{id}, stats:*, and what lease_for touches.
-- ARGV[1] now (ms)   ARGV[2] the worker to lease for, or '' for no lease; with one, ARGV[3..7]
--   its most tasks, the lease TTL (ms), token base, depth and live-since time (ms), as lease_for
--   takes them. Then per task: id, lease token, output JSON, number of chunks c, number of log
--   lines l, the c chunks, the l lines.
-- Returns: {one complete_task reply per task, in order} or, with a lease, {those replies,
--   lease_for's answer}.
local out = {}
local leasing = ARGV[2] ~= ''
local at = leasing and 8 or 3
while at <= #ARGV do
  local c, l = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local chunks, lines = {}, {}
  for i = at + 5, at + 4 + c do chunks[#chunks + 1] = ARGV[i] end
  for i = at + 5 + c, at + 4 + c + l do lines[#lines + 1] = ARGV[i] end
  out[#out + 1] = complete_task(ARGV[at], ARGV[at + 1], ARGV[1], ARGV[at + 2], chunks, lines)
  at = at + 5 + c + l
end
if not leasing then return {out} end
return {out, lease_for(ARGV[2], ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])}
