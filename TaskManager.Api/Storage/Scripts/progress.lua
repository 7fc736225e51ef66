-- Records a running attempt's progress, output chunks and log lines as events of the task
-- (report_progress in lib/lifecycle.lua).
-- KEYS[1] task:{id}
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] progress (0..1) or ''   ARGV[4] message or ''
-- ARGV[5] number of chunks n   ARGV[6 .. 5+n] chunks   ARGV[6+n ..] log lines
-- Also touches: evlist:{id}; publishes on ev:{id} when the task is followed.
-- Returns REPLY.OUTCOME: 'ok' with the status ('canceling' tells the worker to stop),
--   'not_found' or 'stale'.
local n = tonumber(ARGV[5])
local chunks, lines = {}, {}
for i = 6, 5 + n do chunks[#chunks + 1] = ARGV[i] end
for i = 6 + n, #ARGV do lines[#lines + 1] = ARGV[i] end
return report_progress(ARGV[1], ARGV[2], ARGV[3], ARGV[4], chunks, lines)
