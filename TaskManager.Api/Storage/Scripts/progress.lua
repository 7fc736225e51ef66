-- Records a running attempt's progress, output chunks and log lines as events of the task.
-- KEYS[1] task:{id}
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] progress (0..1) or ''   ARGV[4] message or ''
-- ARGV[5] number of chunks n   ARGV[6 .. 5+n] chunks   ARGV[6+n ..] log lines
-- Also touches: evlist:{id}; publishes on ev:{id} when the task is followed.
-- Returns REPLY.OUTCOME: 'ok' with the status ('canceling' tells the worker to stop),
--   'not_found' or 'stale'.
local id = ARGV[1]
local tk = KEYS[1]
local t = read_report(tk)
local refused = refuse_report(t, ARGV[2])
if refused then return refused end
event_state_of(id, t)
if ARGV[3] ~= '' or ARGV[4] ~= '' then
  if ARGV[3] ~= '' then call('HSET', tk, 'progress', ARGV[3]) end
  if ARGV[4] ~= '' then call('HSET', tk, 'progress_message', ARGV[4]) end
  emit(id, 'progress', '{"progress":' .. (ARGV[3] ~= '' and ARGV[3] or 'null') ..
    ',"message":' .. (ARGV[4] ~= '' and cjson.encode(ARGV[4]) or 'null') .. '}')
end
local n = tonumber(ARGV[5])
local chunks, lines = {}, {}
for i = 6, 5 + n do chunks[#chunks + 1] = ARGV[i] end
for i = 6 + n, #ARGV do lines[#lines + 1] = ARGV[i] end
emit_output(id, tk, chunks, lines)
return REPLY.OUTCOME('ok', t.status, t.type)
