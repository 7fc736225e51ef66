-- Records progress reports of running attempts, each as report_progress in lib/lifecycle.lua, in
-- order: a worker's batch (POST /api/workers/{id}/progress) or a task's own report (one of them),
-- one script call however many tasks the worker streams.
-- KEYS task:{id} of each report
-- ARGV per report: task id, lease token, progress (0..1) or '', message or '', number of chunks
--   c, number of log lines l, the c chunks, the l lines.
-- Also touches: evlist:{id} of each task; publishes on ev:{id} when the task is followed.
-- Returns a REPLY.OUTCOME per report, in order: 'ok' with the status ('canceling' tells the worker
--   to stop), 'not_found' or 'stale'; one refused does not stop the others.
local outcomes = {}
local at = 1
while at <= #ARGV do
  local c, l = tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5])
  local chunks, lines = {}, {}
  for i = at + 6, at + 5 + c do chunks[#chunks + 1] = ARGV[i] end
  for i = at + 6 + c, at + 5 + c + l do lines[#lines + 1] = ARGV[i] end
  outcomes[#outcomes + 1] = report_progress(ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], chunks, lines)
  at = at + 6 + c + l
end
return outcomes
