-- Records a worker's successful result for the current attempt.
-- KEYS: none; touches task:{id}, attempts:{id}, idx:*, leases, deadlines, finished.
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] now (ms)   ARGV[4] output JSON
-- Returns: {'ok', new status, type, attempt, started (ms), worker, traceparent} | {'not_found'} |
--   {'stale', status} (token not current or state does not take a result). A task being canceled ends 'canceled': the client's request to stop
--   wins over a late result.
local id, now = ARGV[1], tonumber(ARGV[3])
local tk = task_key(id)
local status, ttype, err = check_report(tk, ARGV[2])
if err then return err end

local to
if status == 'canceling' then to = 'canceled' else to = 'succeeded' end
if not can_move(status, to) then return {'stale', status} end

local a = redis.call('HMGET', tk, 'attempt', 'started', 'worker', 'trace')
record_attempt(id, tk, to, '', ARGV[3])
end_attempt(tk, id)
if to == 'succeeded' then
  redis.call('HSET', tk, 'output', ARGV[4], 'progress', 1)
end
finish(id, tk, ttype, status, to, ARGV[3])
return {'ok', to, ttype, a[1], a[2] or '', a[3] or '', a[4] or ''}
