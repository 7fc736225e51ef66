-- Records a failed attempt: a retry after a backoff while the error is retryable and attempts
-- remain, else final ('failed', or 'timed_out' for a timeout); a task being canceled ends
-- 'canceled'.
-- KEYS[1] task:{id}
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] now (ms)   ARGV[4] error JSON ({code, message})
-- ARGV[5] '1' when the error is retryable   ARGV[6] kind: 'error', 'timeout', 'canceled' or
--   'handed_back' (a worker shutting down; queued again at once)
-- ARGV[7] backoff delays (ms) after attempt 1, 2, ... (comma list)
-- Also touches: attempts:{id}, evlist:{id}, idx:*, leases, deadlines, queue:{type}, scheduled,
--   finished, outbox, worker:{id}, stats:*; publishes on notify for a task queued again, on
--   ev:{id} when the task is followed.
-- Returns REPLY.OUTCOME: 'ok' with the new status and the attempt ended, 'not_found', or 'stale'.
local id, token, now, kind = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[6]
local tk = KEYS[1]
local t = read_attempt(tk)
local refused = refuse_report(t, token)
if refused then return refused end

local OUTCOMES = {error = 'failed', timeout = 'timeout', canceled = 'canceled', handed_back = 'handed_back'}
local to, ended = 'canceled', 'canceled'
if t.status ~= 'canceling' then
  local final = 'failed'
  if kind == 'timeout' then final = 'timed_out' end
  to = after_failure(t, ARGV[5] == '1' and kind ~= 'canceled', final, kind == 'handed_back')
  ended = OUTCOMES[kind] or 'failed'
end
if not can_move(t.status, to) then return REPLY.OUTCOME('stale', t.status) end

end_attempt_and_move(id, tk, t, to, ended, ARGV[4], now, split(ARGV[7]))
return moved(to, t)
