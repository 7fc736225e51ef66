-- Records a running attempt's progress, output chunks and log lines as events of the task.
-- KEYS: none; touches task:{id}, evlist:{id}; publishes on ev:{id} when the task is followed.
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] progress (0..1) or ''   ARGV[4] message or ''
-- ARGV[5] number of chunks n   ARGV[6 .. 5+n] chunks   ARGV[6+n ..] log lines
-- Returns: {'ok', status} | {'not_found'} | {'stale', status}. Status 'canceling' tells the
--   worker to stop.
local id = ARGV[1]
local tk = task_key(id)
local status, _, err = check_report(tk, ARGV[2])
if err then return err end
local attempt = redis.call('HGET', tk, 'attempt')
if ARGV[3] ~= '' or ARGV[4] ~= '' then
  if ARGV[3] ~= '' then redis.call('HSET', tk, 'progress', ARGV[3]) end
  if ARGV[4] ~= '' then redis.call('HSET', tk, 'progress_message', ARGV[4]) end
  local data = '{"progress":' .. (ARGV[3] ~= '' and ARGV[3] or 'null') ..
    ',"message":' .. (ARGV[4] ~= '' and cjson.encode(ARGV[4]) or 'null') .. '}'
  emit(id, 'progress', attempt, data)
end
local n = tonumber(ARGV[5])
local chunks, lines = {}, {}
for i = 6, 5 + n do chunks[#chunks + 1] = ARGV[i] end
for i = 6 + n, #ARGV do lines[#lines + 1] = ARGV[i] end
emit_output(id, tk, attempt, chunks, lines)
return {'ok', status}
