-- Records many progress reports of a worker at once (POST /api/workers/{id}/progress), each as
-- progress.lua would, in order: one script call however many tasks the worker streams.
-- KEYS task:{id} of each report
-- ARGV per report: task id, lease token, progress (0..1) or '', message or '', number of chunks
--   c, number of log lines l, the c chunks, the l lines.
-- Also touches: what progress.lua touches, for each task.
-- Returns a REPLY.OUTCOME per report, in order: one refused ('not_found', 'stale') does not stop
--   the others.
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
