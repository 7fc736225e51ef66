-- Records many successful results at once (POST /api/workers/{id}/complete): each as complete.lua
-- would, with its last output chunks and log lines, in order; then, when asked, leases the worker
-- its next tasks (lease_for in lib/placement.lua), after the results: the whole call is one script.
-- KEYS[1] worker:{id} of the worker to lease for (workers when none)   KEYS[2 ..] task:{id} of each result
-- ARGV[1] now (ms)   ARGV[2] the worker to lease for, or '' for no lease; with one, ARGV[3..7]
--   its most tasks, the lease TTL (ms), token base, depth and live-since time (ms), as lease_for
--   takes them. Then per task: id, lease token, output JSON, number of chunks c, number of log
--   lines l, the c chunks, the l lines.
-- Also touches: what complete.lua and lease.lua touch.
-- Returns REPLY.COMPLETE_BATCH: outcomes (a REPLY.OUTCOME per result, in order), lease (a
--   REPLY.LEASE, or '' when none was asked).
-- now stays the text it came as: a number written to Redis would be formatted again for each task.
local now = ARGV[1]
local outcomes = {}
local leasing = ARGV[2] ~= ''
local at = leasing and 8 or 3
while at <= #ARGV do
  local c, l = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local chunks, lines = {}, {}
  for i = at + 5, at + 4 + c do chunks[#chunks + 1] = ARGV[i] end
  for i = at + 5 + c, at + 4 + c + l do lines[#lines + 1] = ARGV[i] end
  outcomes[#outcomes + 1] = complete_task(ARGV[at], ARGV[at + 1], now, ARGV[at + 2], chunks, lines)
  at = at + 5 + c + l
end
local lease
if leasing then lease = lease_reply(lease_for(ARGV[2], ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])) end
return REPLY.COMPLETE_BATCH(outcomes, lease)
