-- Records a failed attempt: a retry after a backoff while the error is retryable and attempts
-- remain, else final ('failed', or 'timed_out' for a timeout).
-- KEYS: none; touches task:{id}, attempts:{id}, idx:*, leases, deadlines, scheduled, finished, outbox.
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] now (ms)   ARGV[4] error JSON ({code, message})
-- ARGV[5] '1' when the error is retryable   ARGV[6] kind: 'error', 'timeout', 'canceled' or
--   'handed_back' (a worker shutting down; queued again at once)
-- ARGV[7] backoff delays (ms) after attempt 1, 2, ... (comma list)
-- Returns: {'ok', new status, type, attempt, started (ms), worker, traceparent} | {'not_found'} |
--   {'stale', status}.
local id, now, kind = ARGV[1], tonumber(ARGV[3]), ARGV[6]
local tk = task_key(id)
local status, ttype, err = check_report(tk, ARGV[2])
if err then return err end

local to
if status == 'canceling' then
  to = 'canceled'
else
  local final = 'failed'
  if kind == 'timeout' then final = 'timed_out' end
  to = failure_target(tk, ARGV[5] == '1' and kind ~= 'canceled', final, kind == 'handed_back')
end
if not can_move(status, to) then return {'stale', status} end

local a = redis.call('HMGET', tk, 'attempt', 'started', 'worker', 'trace')
local outcomes = {error = 'failed', timeout = 'timeout', canceled = 'canceled', handed_back = 'handed_back'}
if status == 'canceling' then
  record_attempt(id, tk, 'canceled', ARGV[4], ARGV[3])
else
  record_attempt(id, tk, outcomes[kind] or 'failed', ARGV[4], ARGV[3])
  redis.call('HSET', tk, 'error', ARGV[4])
end
end_attempt(tk, id)
move_after_failure(id, tk, ttype, status, to, split(ARGV[7]), now)
return {'ok', to, ttype, a[1], a[2] or '', a[3] or '', a[4] or ''}
