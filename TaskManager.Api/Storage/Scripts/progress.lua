-- Records a running attempt's progress.
-- KEYS: none; touches task:{id}.
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] progress (0..1) or ''   ARGV[4] message or ''
-- Returns: {'ok', status} | {'not_found'} | {'stale', status}. Status 'canceling' tells the
--   worker to stop.
local tk = task_key(ARGV[1])
local status, _, err = check_report(tk, ARGV[2])
if err then return err end
if ARGV[3] ~= '' then redis.call('HSET', tk, 'progress', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', tk, 'progress_message', ARGV[4]) end
return {'ok', status}
