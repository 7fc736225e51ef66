-- Lifecycle: the state machine (TRANSITIONS, generated from Domain/TaskState.cs) and the moves of
-- a task between states. Each helper here does what its name says and no more: a script names
-- each side effect of a move where it makes it (emit_status, count_finished, observe,
-- count_worker_outcome, notify_work, move_listing).

-- True when `from` may move to `to` under the state machine.
local function can_move(from, to)
  local targets = TRANSITIONS[from]
  return targets ~= nil and targets[to] == true
end

-- Final states are the ones the state machine lets go nowhere.
local function is_final(status)
  local targets = TRANSITIONS[status]
  return targets ~= nil and next(targets) == nil
end

-- Refuses a move the state machine does not allow. Call it before any write: Redis does not
-- undo a script's earlier writes when it fails.
local function assert_move(from, to)
  if not can_move(from, to) then
    error('TaskManager: the state machine does not allow ' .. tostring(from) .. ' -> ' .. tostring(to))
  end
end

-- True when a caller of `tenant` may touch a task stored under `stored`: its own, or an admin ('*').
local function tenant_allows(stored, tenant)
  return tenant == '*' or tenant_of(stored) == tenant
end

-- The reply refusing a worker's report about task `t` (its status and token read), or nil when
-- `token` is its current attempt's. A task between attempts has an empty token, which no report
-- carries.
local function refuse_report(t, token)
  if not t.status then return REPLY.OUTCOME('not_found') end
  if not t.token or t.token == '' or t.token ~= token then return REPLY.OUTCOME('stale', t.status) end
  return nil
end

-- The reply of a state change that happened: the new status, and the attempt it ended, if any.
local function moved(to, t)
  return REPLY.OUTCOME('ok', to, t.type, t.attempt, t.started, t.worker, t.trace)
end

-- The listing: moves a task between its tenant's status indexes (deferred writes).
local function move_listing(id, ttype, from, to, tenant)
  later('ZREM', index_key(tenant, from, ttype), id)
  later('ZADD', index_key(tenant, to, ttype), 0, id)
end

-- Ends a running attempt's lease and deadline. (Its lease token is cleared by the move that
-- follows: each of store_final, queue_again and schedule_retry writes it empty.)
local function drop_lease(id)
  later('ZREM', LEASES, id)
  later('ZREM', DEADLINES, id)
end

-- A worker's live counts when its attempt ends: one fewer running; one more completed for a
-- success, failed for a failure (a cancel or a hand-back is neither). A worker already forgotten
-- is not brought back (see count_worker).
local function count_worker_outcome(worker, outcome)
  if not worker then return end
  count_worker(worker, 'running', -1)
  if outcome == 'succeeded' then
    count_worker(worker, 'completed', 1)
  elseif outcome ~= 'canceled' and outcome ~= 'handed_back' then
    count_worker(worker, 'failed', 1)
  end
end

-- Wakes a lease waiting for work of this type on any API replica: publishes the type, and the
-- model when the task names one ('' for none), so that a worker that has the model loaded is
-- woken first.
local function notify_work(ttype, model)
  if model and model ~= '' then call('PUBLISH', NOTIFY, ttype .. '|' .. model) else call('PUBLISH', NOTIFY, ttype) end
end

-- Sets a final status, and keeps the task for retention. `extra`: more fields to set in the same
-- write (a result's output).
local function store_final(id, tk, to, now, extra)
  local fields = {'status', to, 'completed', now, 'token', ''}
  for _, v in ipairs(extra or {}) do fields[#fields + 1] = v end
  call('HSET', tk, unpack(fields))
  later('ZADD', FINISHED, now, id)
end

-- Puts a task back in its queue at its original place (from its priority and creation, `t`).
local function queue_again(id, tk, t, now)
  call('HSET', tk, 'status', 'queued', 'queued_at', now, 'token', '')
  call('HDEL', tk, 'started', 'retry_at', 'retry_job')
  call('ZADD', queue_key(t.type), queue_score(t.priority, t.created), id)
end

-- Schedules a retry after attempt `t.attempt`, its backoff from `delays` (ms after attempt 1, 2,
-- ...): the task waits in the scheduled set, and the scheduler turns the outbox entry into a
-- Hangfire job that queues it again when it is due.
local function schedule_retry(id, tk, t, now, delays)
  local attempt = attempt_of(t.attempt)
  local due = now + tonumber(delays[attempt] or delays[#delays] or 0)
  call('HSET', tk, 'status', 'scheduled', 'retry_at', due, 'token', '')
  call('ZADD', SCHEDULED, due, id)
  call('RPUSH', OUTBOX, 'schedule|' .. id .. '|' .. attempt .. '|' .. due)
end

-- Where a task goes after an attempt that did not succeed (`t`: its attempt and max_attempts): a
-- retry while it is retryable and has attempts left ('scheduled', or 'queued' when `immediate`),
-- else `final_status`.
local function after_failure(t, retryable, final_status, immediate)
  if retryable and attempt_of(t.attempt) < tonumber(t.max_attempts) then
    if immediate then return 'queued' end
    return 'scheduled'
  end
  return final_status
end

-- A task with a start deadline (its hash's 'start_by', ms) that waits again, queued or
-- scheduled, is watched for it again: the start deadline sweep dropped it when it found it running.
local function watch_start_deadline(id, start_by)
  if start_by then later('ZADD', START_DEADLINES, start_by, id) end
end

-- Carries out after_failure's answer `to` for task `t` (its type, attempt, priority, created,
-- start_by).
local function retry_or_finish(id, tk, t, to, now, delays)
  if to == 'queued' then
    queue_again(id, tk, t, now)
    watch_start_deadline(id, t.start_by)
  elseif to == 'scheduled' then
    schedule_retry(id, tk, t, now, delays)
    watch_start_deadline(id, t.start_by)
  else
    store_final(id, tk, to, now)
  end
end

-- Ends the wait of a queued or scheduled task `t` (its status, type and tenant read) in the final
-- state `to` (canceled, expired): it leaves its queue, or the scheduled set and its pending retry
-- job (deleted through the outbox); `extra` holds fields to write with the final status. Each side
-- effect is named below.
local function end_waiting(id, tk, t, to, now, extra)
  assert_move(t.status, to)
  event_state_of(id, t)
  if t.status == 'scheduled' then
    call('ZREM', SCHEDULED, id)
    call('RPUSH', OUTBOX, 'delete|' .. id)
  else
    call('ZREM', queue_key(t.type), id)
  end
  store_final(id, tk, to, now, extra)
  count_finished(t.type, to, now)
  move_listing(id, t.type, t.status, to, tenant_of(t.tenant))
  emit_status(id, to)
end

-- The task's fields a worker's result reads.
local function read_result(tk)
  local v = call('HMGET', tk, 'status', 'token', 'type', 'attempt', 'worker', 'started', 'trace', 'tenant', 'rp', 'w',
    'webhook_events')
  return {status = v[1], token = v[2], type = v[3], attempt = v[4], worker = v[5], started = v[6], trace = v[7],
    tenant = v[8], rp = v[9], w = v[10], webhook_events = v[11]}
end

-- The task's fields a move after an attempt that did not succeed reads.
local function read_attempt(tk)
  local v = call('HMGET', tk, 'status', 'token', 'type', 'attempt', 'max_attempts', 'worker', 'started', 'trace', 'tenant',
    'timeout', 'priority', 'created', 'model', 'rp', 'w', 'start_by', 'webhook_events')
  return {status = v[1], token = v[2], type = v[3], attempt = v[4], max_attempts = v[5], worker = v[6], started = v[7],
    trace = v[8], tenant = v[9], timeout = v[10], priority = v[11], created = v[12], model = v[13], rp = v[14], w = v[15],
    start_by = v[16], webhook_events = v[17]}
end

-- Records a worker's successful result for the current attempt (complete.lua, complete_batch.lua);
-- `now` (ms) as the text the script was given, which it writes as it is. `chunks` and `lines` are the attempt's last output chunks and log lines, emitted before the
-- final status, so that a worker needs no progress report just for them. A task being canceled
-- ends canceled: the client's request to stop wins over a late result.
local function complete_task(id, token, now, output, chunks, lines)
  local tk = task_key(id)
  local t = read_result(tk)
  local refused = refuse_report(t, token)
  if refused then return refused end
  local to = 'succeeded'
  if t.status == 'canceling' then to = 'canceled' end
  if not can_move(t.status, to) then return REPLY.OUTCOME('stale', t.status) end

  event_state_of(id, t)
  emit_output(id, tk, chunks, lines)
  if to == 'canceled' then append_attempt(id, t, now, 'canceled', '') end
  observe('run', t.type, tonumber(now) - tonumber(t.started))
  count_worker_outcome(t.worker, to)
  drop_lease(id)
  if to == 'succeeded' then
    store_final(id, tk, to, now, {'output', output, 'progress', 1})
  else
    store_final(id, tk, to, now)
  end
  move_listing(id, t.type, t.status, to, tenant_of(t.tenant))
  emit_status(id, to)
  count_finished(t.type, to, now)
  return moved(to, t)
end

-- Ends the current attempt of a running or canceling task `t` (read with read_attempt) that did
-- not succeed, and moves the task to `to`. `ended` is the attempt's outcome in its history
-- (failed, timeout, lease_expired, canceled, handed_back) and `error_json` its error ('' for
-- none), which a running task also keeps as its own. Each side effect is named below.
local function end_attempt_and_move(id, tk, t, to, ended, error_json, now, delays)
  assert_move(t.status, to)
  event_state_of(id, t)
  append_attempt(id, t, now, ended, error_json)
  observe('run', t.type, now - tonumber(t.started))
  count_worker_outcome(t.worker, ended)
  drop_lease(id)
  if t.status ~= 'canceling' then call('HSET', tk, 'error', error_json) end
  retry_or_finish(id, tk, t, to, now, delays)
  move_listing(id, t.type, t.status, to, tenant_of(t.tenant))
  emit_status(id, to)
  if to == 'queued' then notify_work(t.type, t.model) end
  if is_final(to) then count_finished(t.type, to, now) end
end

-- Ends the attempts listed in `set` (DEADLINES or LEASES) whose time has come, at most `batch`,
-- which their workers did not report: a running one goes where after_failure says
-- (`final_status` when nothing is left, `immediate` for a retry without backoff), with `outcome`
-- in its history; a canceling one ends 'canceled'. Either way the history keeps the error
-- `describe(t)` gives. Each task is
-- claimed here atomically, so scheduler replicas never handle one twice; an entry whose task is
-- no longer running is dropped. Returns the tasks moved (REPLY.SWEPT) and their workers.
local function sweep_due(set, now, batch, outcome, final_status, immediate, delays, describe)
  local out, workers = {}, {}
  for _, id in ipairs(call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, batch)) do
    local tk = task_key(id)
    local t = read_attempt(tk)
    if t.status == 'running' or t.status == 'canceling' then
      local to, ended = 'canceled', 'canceled'
      if t.status == 'running' then to, ended = after_failure(t, true, final_status, immediate), outcome end
      end_attempt_and_move(id, tk, t, to, ended, describe(t), now, delays)
      out[#out + 1] = REPLY.SWEPT(id, to, t.type, t.trace)
      workers[#workers + 1] = t.worker
    else
      call('ZREM', set, id)
    end
  end
  return out, workers
end

-- The task's fields end_retry_wait reads.
local function read_retry(tk)
  local v = call('HMGET', tk, 'status', 'type', 'attempt', 'priority', 'created', 'model', 'tenant', 'rp', 'w',
    'webhook_events')
  return {status = v[1], type = v[2], attempt = v[3], priority = v[4], created = v[5], model = v[6], tenant = v[7],
    rp = v[8], w = v[9], webhook_events = v[10]}
end

-- The task's fields a worker's progress report or artifact reads.
local function read_report(tk)
  local v = call('HMGET', tk, 'status', 'token', 'type', 'attempt', 'rp', 'w', 'artifact_bytes', 'webhook_events')
  return {status = v[1], token = v[2], type = v[3], attempt = v[4], rp = v[5], w = v[6], artifact_bytes = v[7],
    webhook_events = v[8]}
end

-- Records a running attempt's progress report (progress_batch.lua): progress (0..1)
-- and message ('' each when not given), output chunks and log lines, as events of the task.
-- Returns REPLY.OUTCOME: 'ok' with the status ('canceling' tells the worker to stop), 'not_found'
-- or 'stale'.
local function report_progress(id, token, progress, message, chunks, lines)
  local tk = task_key(id)
  local t = read_report(tk)
  local refused = refuse_report(t, token)
  if refused then return refused end
  event_state_of(id, t)
  if progress ~= '' or message ~= '' then
    if progress ~= '' then call('HSET', tk, 'progress', progress) end
    if message ~= '' then call('HSET', tk, 'progress_message', message) end
    emit(id, 'progress', '{"progress":' .. (progress ~= '' and progress or 'null') ..
      ',"message":' .. (message ~= '' and cjson.encode(message) or 'null') .. '}')
  end
  emit_output(id, tk, chunks, lines)
  return REPLY.OUTCOME('ok', t.status, t.type)
end

-- Ends a scheduled task's wait for its retry (`t` read with read_retry): it goes back to its
-- queue. Each side effect is named below.
local function end_retry_wait(id, tk, t, now)
  assert_move(t.status, 'queued')
  event_state_of(id, t)
  call('ZREM', SCHEDULED, id)
  queue_again(id, tk, t, now)
  move_listing(id, t.type, 'scheduled', 'queued', tenant_of(t.tenant))
  emit_status(id, 'queued')
  notify_work(t.type, t.model)
end

-- The task's fields retry_ended reads.
local function read_ended(tk)
  local v = call('HMGET', tk, 'status', 'type', 'attempt', 'max_attempts', 'budget', 'priority', 'created', 'model', 'tenant',
    'start_deadline', 'rp', 'w', 'webhook_events')
  return {status = v[1], type = v[2], attempt = v[3], max_attempts = v[4], budget = v[5], priority = v[6], created = v[7],
    model = v[8], tenant = v[9], start_deadline = v[10], rp = v[11], w = v[12], webhook_events = v[13]}
end

-- Runs an ended task `t` (read with read_ended; its status one of RETRYABLE) again: back to its
-- queue with a fresh attempt budget (as many attempts as it was first given, numbered on from the
-- last), its attempt history kept, its last output and error cleared, and its start deadline, if
-- it has one, counted again from now. It leaves the retention set: it is no longer final.
local function retry_ended(id, tk, t, now)
  event_state_of(id, t)
  local budget = tonumber(t.budget or t.max_attempts)
  call('HSET', tk, 'max_attempts', attempt_of(t.attempt) + budget, 'budget', budget)
  call('HDEL', tk, 'output', 'error', 'completed', 'cancel_requested')
  call('ZREM', FINISHED, id)
  queue_again(id, tk, t, now)
  if t.start_deadline then
    local start_by = string.format('%.0f', now + tonumber(t.start_deadline) * 1000)
    call('HSET', tk, 'start_by', start_by)
    watch_start_deadline(id, start_by)
  end
  move_listing(id, t.type, t.status, 'queued', tenant_of(t.tenant))
  emit_status(id, 'queued')
  notify_work(t.type, t.model)
end
