-- Shared by every script; prepended after the key definitions and TRANSITIONS (the state
-- machine, generated from Domain/TaskState.cs), TASK_TYPES, BUCKETS, queue_score and
-- DEFAULT_TENANT, generated from the C# that defines them (LuaScripts.cs).

-- A task's hash stores no tenant for the default one, DEFAULT_TENANT (see create_task): tenant_of
-- reads a stored value back.
local function tenant_of(stored) return stored or DEFAULT_TENANT end

-- Nor an 'attempt' while it is 0 (see create_task): attempt_of reads a stored value back, as a number.
local function attempt_of(stored) return tonumber(stored) or 0 end

-- Splits a comma list.
local function split(list)
  local items = {}
  for item in string.gmatch(list, '[^,]+') do items[#items + 1] = item end
  return items
end

-- Writes a script defers to its end (flush_writes runs after every script; see LuaScripts.cs):
-- the entries of many tasks in one key go in one command, so a batch of tasks costs a few
-- commands per call where it would cost a few per task. Per key the writes keep their order. Only
-- keys the same script does not read again after writing go through here (a script that must read
-- one calls flush_writes first).
local deferred_keys, deferred, counter_keys, counters, worker_order, worker_deltas

-- Forgets the deferred writes (after they are made, or at the start of a call).
local function clear_deferred()
  deferred_keys, deferred = {}, {}
  counter_keys, counters = {}, {}
  worker_order, worker_deltas = {}, {}
end

-- Defers a sorted-set write: later('ZADD', key, score, member) or later('ZREM', key, member).
local function later(op, key, a, b)
  local ops = deferred[key]
  if not ops then
    ops = {}
    deferred[key] = ops
    deferred_keys[#deferred_keys + 1] = key
  end
  local last = ops[#ops]
  if not last or last.op ~= op then
    last = {op = op, args = {}}
    ops[#ops + 1] = last
  end
  last.args[#last.args + 1] = a
  if b ~= nil then last.args[#last.args + 1] = b end
end

-- Adds n to a hash field at the end of the script. With `ttl`, the key gets that expiry (s) when
-- the field did not exist before.
local function count(key, field, n, ttl)
  local c = counters[key]
  if not c then
    c = {fields = {}, order = {}, ttl = ttl}
    counters[key] = c
    counter_keys[#counter_keys + 1] = key
  end
  if not c.fields[field] then
    c.fields[field] = 0
    c.order[#c.order + 1] = field
  end
  c.fields[field] = c.fields[field] + n
end

-- Adds n to a worker's live count (running, completed or failed) at the end of the script.
local function count_worker(worker, field, n)
  local d = worker_deltas[worker]
  if not d then
    d = {running = 0, completed = 0, failed = 0}
    worker_deltas[worker] = d
    worker_order[#worker_order + 1] = worker
  end
  d[field] = d[field] + n
end

local function flush_writes()
  for _, key in ipairs(deferred_keys) do
    for _, o in ipairs(deferred[key]) do
      -- At most 1,000 values a command (an even number: ZADD's pairs stay whole).
      for i = 1, #o.args, 1000 do
        redis.call(o.op, key, unpack(o.args, i, math.min(i + 999, #o.args)))
      end
    end
  end
  for _, key in ipairs(counter_keys) do
    local c = counters[key]
    for _, field in ipairs(c.order) do
      local n = c.fields[field]
      if n ~= 0 and redis.call('HINCRBY', key, field, n) == n and c.ttl then redis.call('EXPIRE', key, c.ttl) end
    end
  end
  for _, worker in ipairs(worker_order) do
    local d, wk = worker_deltas[worker], worker_key(worker)
    local forgotten = false
    if d.running ~= 0 then
      -- HINCRBY would bring a forgotten worker back as a hash of counts: undo that at once.
      local running = redis.call('HINCRBY', wk, 'running', d.running)
      forgotten = running == d.running and d.running < 0 and redis.call('HLEN', wk) == 1
      if forgotten then redis.call('DEL', wk) end
    end
    if not forgotten then
      if d.completed ~= 0 then redis.call('HINCRBY', wk, 'completed', d.completed) end
      if d.failed ~= 0 then redis.call('HINCRBY', wk, 'failed', d.failed) end
    end
  end
  clear_deferred()
end

-- Counts a duration (ms) in a histogram: the bucket and the sum (the count is the buckets' sum).
local function observe(kind, ttype, ms)
  if ms < 0 then ms = 0 end
  local bucket = #BUCKETS
  for i, bound in ipairs(BUCKETS) do
    if ms <= bound then bucket = i - 1; break end
  end
  local key = histogram_key(kind, ttype)
  count(key, bucket, 1)
  count(key, 'sum', math.floor(ms))
end

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

-- Appends an event to the task's event list and, when someone follows the task, wakes its
-- followers on any API replica. An event is 'kind|attempt|data'; its id is its place in the list
-- (1, 2, ...). Three events are not stored, each implied by the task's hash, so that the happy
-- path writes none (a reader puts them in; see ReadEventsAsync):
-- - the submission's 'queued': every task starts queued; it is event 0;
-- - an attempt's 'running', until another event of that attempt is stored: the lease sets the
--   task's 'rp' (running pending) instead, and the first event stored after it stores the
--   'running' first, at the place the reader showed it;
-- - 'succeeded': nothing follows it, so the reader puts it last.
-- A task's 'w' field says someone follows it (set by the event stream before it reads); only then
-- is there a publish. Past MAX_EVENTS only status events are kept, so that the end is never lost.
-- kind: status, progress, chunk or log; data: a JSON object.
local MAX_EVENTS = 100000
local event_state

-- What emit needs of a task (its attempt, rp and w), read once per script; a caller that has
-- read them passes them.
local function event_state_of(id, attempt, rp, w)
  local st = event_state[id]
  if not st then
    if attempt == nil then
      local f = redis.call('HMGET', task_key(id), 'attempt', 'rp', 'w')
      attempt, rp, w = f[1], f[2], f[3]
    end
    st = {attempt = attempt_of(attempt), rp = rp, w = w}
    event_state[id] = st
  end
  return st
end

-- Wakes a task's followers, if it has any (the id published is the latest event's; followers
-- only need to know there is more).
local function wake_followers(id, st, n)
  if st.w then redis.call('PUBLISH', event_channel(id), n or 0) end
end

local function emit(id, kind, attempt, data)
  local key = events_key(id)
  local st = event_state_of(id)
  local n
  if st.rp == '1' then
    n = redis.call('RPUSH', key, 'status|' .. st.attempt .. '|{"status":"running"}', kind .. '|' .. attempt .. '|' .. data)
    redis.call('HSET', task_key(id), 'rp', '0')
    st.rp = '0'
  else
    n = redis.call('RPUSH', key, kind .. '|' .. attempt .. '|' .. data)
  end
  if n > MAX_EVENTS and kind ~= 'status' then
    redis.call('RPOP', key)
    return
  end
  wake_followers(id, st, n)
end

-- Moves a task between the status indexes used for listing (deferred writes).
local function move_index_only(id, ttype, from, to, tenant)
  later('ZREM', index_key(tenant, from, ttype), id)
  later('ZADD', index_key(tenant, to, ttype), 0, id)
end

-- Moves a task between the status indexes used for listing. Every status change passes here,
-- so here it becomes a status event (but see emit: 'succeeded' is implied, not stored). A caller
-- that has read the task's tenant (through tenant_of) and attempt passes them (saving a read); else
-- they are read here.
local function move_index(id, ttype, from, to, tenant, attempt)
  if not tenant then
    local f = redis.call('HMGET', task_key(id), 'tenant', 'attempt')
    tenant, attempt = tenant_of(f[1]), f[2]
  end
  move_index_only(id, ttype, from, to, tenant)
  if to == 'succeeded' then
    wake_followers(id, event_state_of(id))
  else
    emit(id, 'status', attempt_of(attempt), '{"status":"' .. to .. '"}')
  end
end

-- True when the caller may touch the task: its own tenant, or an admin ('*').
local function tenant_allows(tk, tenant)
  if tenant == '*' then return true end
  return tenant_of(redis.call('HGET', tk, 'tenant')) == tenant
end

-- Ends a running attempt's bookkeeping: no lease, no deadline, no current token.
local function end_attempt(tk, id, keep_token)
  later('ZREM', LEASES, id)
  later('ZREM', DEADLINES, id)
  if not keep_token then redis.call('HDEL', tk, 'token') end
end

-- Reads the fields a worker report checks. Returns status, type, or nil and an error reply.
local function check_report(tk, token)
  local f = redis.call('HMGET', tk, 'status', 'token', 'type')
  if not f[1] then return nil, nil, {'not_found'} end
  if not f[2] or f[2] ~= token then return nil, nil, {'stale', f[1]} end
  return f[1], f[3], nil
end


-- Refuses a move the state machine does not allow. Call it before any write: Redis does not
-- undo a script's earlier writes when it fails.
local function assert_move(from, to)
  if not can_move(from, to) then
    error('TaskManager: the state machine does not allow ' .. tostring(from) .. ' -> ' .. tostring(to))
  end
end

-- One attempt of a task's history, as JSON: its number, worker, start and end (ms), outcome and
-- error (a JSON object, or '' for none).
local function attempt_entry(attempt, worker, started, ended, outcome, error_json)
  return '{"attempt":' .. attempt_of(attempt) ..
    ',"worker_id":' .. (worker and cjson.encode(worker) or 'null') ..
    ',"started_at":' .. (started or 'null') ..
    ',"ended_at":' .. (ended or 'null') ..
    ',"outcome":' .. cjson.encode(outcome) ..
    ',"error":' .. (error_json ~= '' and error_json or 'null') .. '}'
end

-- Appends the attempt that is ending to the task's history (attempts:{id}), as JSON.
-- outcome: succeeded, failed, timeout, lease_expired, canceled, handed_back. `f` is the task's
-- attempt, worker, started and type when the caller has read them.
local function record_attempt(id, tk, outcome, error_json, now, f)
  f = f or redis.call('HMGET', tk, 'attempt', 'worker', 'started', 'type')
  if f[3] then observe('run', f[4], tonumber(now) - tonumber(f[3])) end
  -- The attempt that succeeded is not stored: it is the task's last, read from its hash (get.lua).
  if outcome ~= 'succeeded' then
    redis.call('RPUSH', attempts_key(id), attempt_entry(f[1], f[2], f[3], now, outcome, error_json))
  end
  -- The worker's live counts (a worker already forgotten is not brought back).
  if f[2] then
    count_worker(f[2], 'running', -1)
    if outcome == 'succeeded' then
      count_worker(f[2], 'completed', 1)
    elseif outcome ~= 'canceled' and outcome ~= 'handed_back' then
      count_worker(f[2], 'failed', 1)
    end
  end
end

-- Deletes a task with everything kept beside it: history, events, artifacts, index entries.
local function delete_task(id, tk, status, ttype)
  if status then redis.call('ZREM', index_key(tenant_of(redis.call('HGET', tk, 'tenant')), status, ttype), id) end
  for _, name in ipairs(redis.call('HKEYS', artifacts_key(id))) do
    redis.call('DEL', artifact_key(id, name))
  end
  redis.call('DEL', tk, attempts_key(id), events_key(id), old_events_key(id), artifacts_key(id))
  redis.call('ZREM', FINISHED, id)
end

-- Keeps the model:{name} sets in step with the models a worker reports loaded.
local function set_worker_models(worker, old_csv, new_csv)
  local new = {}
  for _, m in ipairs(split(new_csv)) do new[m] = true; redis.call('SADD', model_key(m), worker) end
  for _, m in ipairs(split(old_csv or '')) do
    if not new[m] then redis.call('SREM', model_key(m), worker) end
  end
end

-- Moves a task to a final state and records when, for retention. `extra`: more fields to set
-- in the same write (the output); `tenant`, `attempt`: as move_index takes them.
local function finish(id, tk, ttype, from, to, now, extra, tenant, attempt)
  local fields = {'status', to, 'completed', now}
  for _, v in ipairs(extra or {}) do fields[#fields + 1] = v end
  redis.call('HSET', tk, unpack(fields))
  later('ZADD', FINISHED, now, id)
  move_index(id, ttype, from, to, tenant, attempt)
  -- Statistics: all-time totals, and per minute for throughput (kept 20 minutes; the expiry is
  -- set when a minute's first count of a kind makes it).
  count(STATS_TOTALS, ttype .. ':' .. to, 1)
  count(stats_minute_key(math.floor(tonumber(now) / 60000)), ttype .. ':' .. to, 1, 1200)
end

-- Puts a task back in its queue at its original place (priority, then age) and wakes a lease.
local function requeue(id, tk, ttype, from, now)
  -- The score comes from the priority and the creation time; a task stored before that rule kept
  -- its score in 'qs'.
  local f = redis.call('HMGET', tk, 'priority', 'created', 'qs', 'model', 'tenant', 'attempt')
  local qs = f[3] or queue_score(f[1], f[2])
  redis.call('HSET', tk, 'status', 'queued', 'queued_at', now)
  redis.call('HDEL', tk, 'started', 'retry_at', 'retry_job')
  redis.call('ZADD', queue_key(ttype), qs, id)
  move_index(id, ttype, from, 'queued', tenant_of(f[5]), f[6])
  local model = f[4]
  if model then redis.call('PUBLISH', NOTIFY, ttype .. '|' .. model) else redis.call('PUBLISH', NOTIFY, ttype) end
end

-- Where a task goes after an attempt that did not succeed: a retry while it is retryable and
-- has attempts left ('scheduled', or 'queued' when `immediate`), else `final_status`.
local function failure_target(tk, retryable, final_status, immediate)
  local f = redis.call('HMGET', tk, 'attempt', 'max_attempts')
  if retryable and attempt_of(f[1]) < tonumber(f[2]) then
    if immediate then return 'queued' end
    return 'scheduled'
  end
  return final_status
end

-- Carries out failure_target's answer. `delays` lists the backoff (ms) after attempt 1, 2, ...;
-- a retry is handed to the scheduler through the outbox, which makes it a Hangfire job.
local function move_after_failure(id, tk, ttype, from, to, delays, now)
  if to == 'queued' then
    requeue(id, tk, ttype, from, now)
  elseif to == 'scheduled' then
    local attempt = attempt_of(redis.call('HGET', tk, 'attempt'))
    local due = now + tonumber(delays[attempt] or delays[#delays] or 0)
    redis.call('HSET', tk, 'status', 'scheduled', 'retry_at', due)
    redis.call('ZADD', SCHEDULED, due, id)
    move_index(id, ttype, from, 'scheduled')
    redis.call('RPUSH', OUTBOX, 'schedule|' .. id .. '|' .. attempt .. '|' .. due)
  else
    finish(id, tk, ttype, from, to, now)
  end
end

-- Ends an attempt its worker did not report (its deadline passed, or its lease expired): records
-- it, and moves the task to `to`. `outcome` says why, for a running task; a canceling one ends
-- canceled.
local function end_unreported(id, tk, status, ttype, to, outcome, error_json, delays, now)
  assert_move(status, to)
  if status == 'running' then
    record_attempt(id, tk, outcome, error_json, now)
    redis.call('HSET', tk, 'error', error_json)
  else
    record_attempt(id, tk, 'canceled', error_json, now)
  end
  end_attempt(tk, id)
  move_after_failure(id, tk, ttype, status, to, delays, now)
end

-- Ends the attempts listed in `set` (DEADLINES or LEASES) whose time has come, at most `batch`:
-- a running one goes where failure_target says (`final_status` when nothing is left, `immediate`
-- for a retry without backoff), a canceling one ends 'canceled'. `describe(f)` gives the error,
-- from the task's status, type, worker and timeout. Each task is claimed here atomically, so
-- scheduler replicas never handle one twice; an entry whose task is no longer running is dropped.
-- Returns {task id, new status, type, traceparent, worker, ...} for each task handled.
local function sweep_due(set, now, batch, outcome, final_status, immediate, delays, describe)
  local out = {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, batch)) do
    local tk = task_key(id)
    local f = redis.call('HMGET', tk, 'status', 'type', 'worker', 'timeout')
    if f[1] == 'running' or f[1] == 'canceling' then
      local to = 'canceled'
      if f[1] == 'running' then to = failure_target(tk, true, final_status, immediate) end
      end_unreported(id, tk, f[1], f[2], to, outcome, describe(f), delays, now)
      out[#out + 1] = {id, to, f[2], redis.call('HGET', tk, 'trace') or '', f[3]}
    else
      redis.call('ZREM', set, id)
    end
  end
  return out
end

-- The number of tasks a tenant has queued, over all types (the tenant queue cap counts these).
local function queued_count(tenant)
  local queued = 0
  for _, t in ipairs(TASK_TYPES) do queued = queued + redis.call('ZCARD', index_key(tenant, 'queued', t)) end
  return queued
end

-- The values of one new task in a submit script's ARGV, from `at`: id, type, priority, input
-- JSON, timeout (s), max attempts, then model, metadata JSON, webhook, traceparent, required GPU
-- memory (MB) and required GPU name pattern, each '' when absent.
local TASK_VALUES = 12
local OPTIONAL_TASK_FIELDS = {'model', 'metadata', 'webhook', 'trace', 'req_mem', 'req_gpu'}

-- Stores a new task from ARGV (see TASK_VALUES) and queues it. The caller publishes on NOTIFY
-- (once per type and model for a batch) and counts it in the statistics. The hash holds no field
-- that another says already, so that a queued task costs as little memory as it can: no 'id' (the
-- key says it; task_hash puts it back), no 'attempt' while it is 0, no 'tenant' for the default
-- one, no 'queued_at' until a retry queues it again (the lease reads 'created' instead), and no
-- queue score (queue_score derives it from the priority and 'created').
local function create_task(at, tenant, now)
  local id, ttype, priority = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local fields = {'type', ttype, 'status', 'queued', 'priority', priority, 'created', now,
    'input', ARGV[at + 3], 'timeout', ARGV[at + 4], 'max_attempts', ARGV[at + 5]}
  if tenant ~= DEFAULT_TENANT then fields[#fields + 1] = 'tenant'; fields[#fields + 1] = tenant end
  for i, field in ipairs(OPTIONAL_TASK_FIELDS) do
    local value = ARGV[at + 5 + i]
    if value ~= '' then fields[#fields + 1] = field; fields[#fields + 1] = value end
  end
  redis.call('HSET', task_key(id), unpack(fields))
  later('ZADD', queue_key(ttype), queue_score(priority, now), id)
  later('ZADD', index_key(tenant, 'queued', ttype), 0, id)
  return ttype, ARGV[at + 6]
end

-- A task's hash as a flat field/value list, with its id (the hash does not store it), or an empty
-- list when there is no such task.
local function task_hash(id)
  local h = redis.call('HGETALL', task_key(id))
  if #h > 0 then h[#h + 1] = 'id'; h[#h + 1] = id end
  return h
end

-- What a submission publishes on NOTIFY: the type, and the model when it names one, so that a
-- waiting worker that has the model loaded is woken first.
local function notify_name(ttype, model)
  if model ~= '' then return ttype .. '|' .. model end
  return ttype
end

-- Emits a running attempt's output chunks (numbered per attempt) and log lines as events.
local function emit_output(id, tk, attempt, chunks, lines)
  for _, text in ipairs(chunks) do
    -- Numbered per attempt, so a client can tell a gap or a repeat at a glance.
    local index = redis.call('HINCRBY', tk, 'chunks', 1)
    emit(id, 'chunk', attempt, '{"index":' .. index .. ',"text":' .. cjson.encode(text) .. '}')
  end
  for _, line in ipairs(lines) do
    emit(id, 'log', attempt, '{"line":' .. cjson.encode(line) .. '}')
  end
end

-- Records a worker's successful result for the current attempt (complete.lua, complete_batch.lua).
-- `chunks` and `lines`, when given, are the attempt's last output chunks and log lines: emitted
-- before the final status, so a worker needs no progress report just for them.
-- Returns: {'ok', new status, type, attempt, started (ms), worker, traceparent} | {'not_found'} |
--   {'stale', status} (token not current or state does not take a result). A task being canceled
--   ends 'canceled': the client's request to stop wins over a late result.
local function complete_task(id, token, now, output, chunks, lines)
  local tk = task_key(id)
  -- One read for everything below: the report's check, the attempt's record, the index move,
  -- the events.
  local f = redis.call('HMGET', tk, 'status', 'token', 'type', 'attempt', 'worker', 'started', 'trace', 'tenant', 'rp', 'w')
  local status, ttype = f[1], f[3]
  if not status then return {'not_found'} end
  if not f[2] or f[2] ~= token then return {'stale', status} end

  local to
  if status == 'canceling' then to = 'canceled' else to = 'succeeded' end
  if not can_move(status, to) then return {'stale', status} end

  event_state_of(id, f[4], f[9], f[10])
  if chunks and (#chunks > 0 or #lines > 0) then emit_output(id, tk, f[4], chunks, lines) end
  record_attempt(id, tk, to, '', now, {f[4], f[5], f[6], ttype})
  end_attempt(tk, id, true)
  local extra = {'token', ''}
  if to == 'succeeded' then extra = {'token', '', 'output', output, 'progress', 1} end
  finish(id, tk, ttype, status, to, now, extra, tenant_of(f[8]), f[4])
  return {'ok', to, ttype, f[4], f[6] or '', f[5] or '', f[7] or ''}
end

-- Empties what a call keeps (deferred writes, the events' task state): the library's shared part
-- runs once, so this state outlives a call, and one that failed half-way may have left some.
local function reset_state()
  clear_deferred()
  event_state = {}
end

-- Hands a worker up to N queued tasks that it can run: a type it serves, enough free GPU memory,
-- a matching GPU. Among those: higher priority first; then a task whose model it has loaded (or
-- that names none); then the oldest. A task whose model this worker lacks but another live worker
-- with free capacity has loaded is left for that worker. Only the first `depth` tasks of each
-- queue are considered, so a lease costs the same however long the queues are.
-- Touches worker:{id}, paused, model:{name}, queue:{type}, task:{id}, idx:*, leases, deadlines,
-- stats:wait:{type}; publishes on ev:{id} for a followed task, on cancels for an idle worker.
-- Called by lease.lua, and by submit.lua to hand a new task straight to a lease waiting on this
-- replica. Arguments (numbers may come as strings, as in ARGV): the worker's id, now (ms), the
-- most tasks to take, the lease TTL (ms), a token base (random; each task's lease token is
-- base:n), the depth, and the time (ms) since which a worker heard from counts as live.
-- Returns: {'unknown_worker'} or {'ok', types (comma list), models (comma list), more (1 when
--   tasks remain queued), left for others ('type|model' comma list), task...}, each task {id,
--   token, type, model, input, metadata, attempt, max attempts, timeout (s), deadline (ms),
--   traceparent, wait (ms)}.
local function lease_for(worker, now_ms, max_tasks_arg, ttl_ms, token_base, depth_arg, live_since_ms)
  local w = redis.call('HMGET', worker_key(worker), 'types', 'gpu_free_mb', 'gpu_names', 'models', 'draining', 'idle')
  if not w[1] then return {'unknown_worker'} end
  local out = {'ok', w[1], w[4] or '', 0, ''}
  if w[5] == '1' then return out end

  local now, max_tasks, ttl = tonumber(now_ms), tonumber(max_tasks_arg), tonumber(ttl_ms)
  local depth, live_since = tonumber(depth_arg), tonumber(live_since_ms)
  local budget = tonumber(w[2]) or 0
  local gpu_names = w[3] or ''
  local loaded = {}
  for _, m in ipairs(split(w[4] or '')) do loaded[m] = true end

  -- A paused type's queue gives nothing.
  local types = split(w[1])
  local paused = {}
  local flags = redis.call('SMISMEMBER', PAUSED, unpack(types))
  for i, t in ipairs(types) do paused[t] = flags[i] == 1 end

  -- The candidates: the queues' entries merged in score order (then by id, as ZRANGE orders ties),
  -- read lazily, a page at a time, at most `depth` per queue. A lease of one task usually reads a
  -- couple of entries: reading and sorting `depth` of every queue cost more than the rest of it.
  local queues = {}
  for _, t in ipairs(types) do
    if not paused[t] then
      -- items: the page read last (id, score, ...); at: its next entry; read: entries read so far;
      -- page: the next page's size (doubling); exhausted: a page came back short.
      queues[#queues + 1] = {type = t, items = {}, at = 1, read = 0, page = math.min(depth, max_tasks + 1),
        exhausted = false}
    end
  end
  -- The queue `q` with its next entry in hand, or nil when it has none left to give.
  local function head(q)
    if q.at <= #q.items then return q end
    if q.exhausted or q.read >= depth then return nil end
    local n = math.min(q.page, depth - q.read)
    q.items = redis.call('ZRANGE', queue_key(q.type), q.read, q.read + n - 1, 'WITHSCORES')
    q.at, q.read, q.page = 1, q.read + #q.items / 2, 2 * q.page
    q.exhausted = #q.items < 2 * n
    if #q.items == 0 then return nil end
    return q
  end
  local candidates = {}
  -- The i-th candidate, reading further into the queues as needed; nil past the last.
  local function candidate(i)
    while #candidates < i do
      local best, best_score
      for _, q in ipairs(queues) do
        if head(q) then
          local score = tonumber(q.items[q.at + 1])
          if not best or score < best_score or (score == best_score and q.items[q.at] < best.items[best.at]) then
            best, best_score = q, score
          end
        end
      end
      if not best then return nil end
      candidates[#candidates + 1] = {id = best.items[best.at], score = best_score, type = best.type}
      best.at = best.at + 2
    end
    return candidates[i]
  end

  local function fits(req_mem, req_gpu)
    if req_mem and tonumber(req_mem) > budget then return false end
    if req_gpu and not string.find(gpu_names, string.lower(req_gpu), 1, true) then return false end
    return true
  end

  -- True when another live, undrained worker with a free slot has `model` loaded.
  local held = {}
  local function held_for_other(model)
    if held[model] == nil then
      held[model] = false
      for _, other in ipairs(redis.call('SMEMBERS', model_key(model))) do
        if other ~= worker then
          local o = redis.call('HMGET', worker_key(other), 'last_seen', 'draining', 'running', 'capacity')
          if o[1] and tonumber(o[1]) >= live_since and o[2] ~= '1' and tonumber(o[3] or '0') < tonumber(o[4] or '1') then
            held[model] = true
            break
          end
        end
      end
    end
    return held[model]
  end

  local function priority_band(score) return math.floor(score / 1e13) end

  local info, left = {}, {}
  local taken = 0
  while taken < max_tasks do
    local pick, fallback
    for i = 1, math.huge do
      local c = candidate(i)
      if not c then break end
      if not c.done then
        if fallback and priority_band(c.score) ~= priority_band(fallback.score) then break end
        local f = info[c.id]
        if not f then
          -- Everything the lease needs, read once: fields 1-4 decide, the rest go to the worker.
          f = redis.call('HMGET', task_key(c.id), 'status', 'model', 'req_mem', 'req_gpu', 'timeout', 'attempt',
            'input', 'metadata', 'max_attempts', 'trace', 'queued_at', 'created', 'tenant', 'w')
          info[c.id] = f
        end
        if not f[1] or not can_move(f[1], 'running') then
          -- A queue entry whose task is gone or no longer queued cannot be leased.
          c.done = true
          later('ZREM', queue_key(c.type), c.id)
        elseif fits(f[3], f[4]) then
          if not f[2] or loaded[f[2]] then
            pick = c
            break
          end
          if held_for_other(f[2]) then
            left[c.type .. '|' .. f[2]] = true
          elseif not fallback then
            fallback = c
          end
        end
      end
    end
    pick = pick or fallback
    if not pick then break end
    pick.done = true

    local id = pick.id
    local tk = task_key(id)
    local f = info[id]
    later('ZREM', queue_key(pick.type), id)
    local wait_ms = now - tonumber(f[11] or f[12])
    observe('wait', pick.type, wait_ms)
    taken = taken + 1
    local token = token_base .. ':' .. taken
    local attempt = attempt_of(f[6]) + 1
    local deadline = now + tonumber(f[5]) * 1000
    -- 'rp': this attempt's 'running' event is implied, not stored (see emit in common.lua).
    redis.call('HSET', tk, 'status', 'running', 'worker', worker, 'token', token,
      'started', now_ms, 'attempt', attempt, 'rp', '1')
    -- A retry starts without the last attempt's progress; a first attempt has none to clear.
    if attempt > 1 then redis.call('HDEL', tk, 'progress', 'progress_message', 'chunks') end
    later('ZADD', LEASES, now + ttl, id)
    later('ZADD', DEADLINES, deadline, id)
    count_worker(worker, 'running', 1)
    move_index_only(id, pick.type, f[1], 'running', tenant_of(f[13]))
    wake_followers(id, {w = f[14]})
    budget = budget - (tonumber(f[3]) or 0)
    out[#out + 1] = {id, token, pick.type, f[2] or '', f[7], f[8] or '', attempt, f[9], f[5],
      deadline, f[10] or '', wait_ms}
  end

  -- A worker whose heartbeat is held idle (see heartbeat.lua) must send one with its new tasks
  -- before their leases lapse: wake the held heartbeat, on whichever replica holds it.
  if taken > 0 and w[6] == '1' then
    redis.call('HSET', worker_key(worker), 'idle', '0')
    redis.call('PUBLISH', CANCELS, worker)
  end

  -- Only a full hand may leave work behind; then the caller passes the wake-up on. A candidate read
  -- and not taken is work left (a page holds one more than the hand, so this is the usual answer); a
  -- queue read to its end has nothing more; any other is counted.
  if taken == max_tasks then
    local left_over = false
    for _, c in ipairs(candidates) do
      if not c.done then left_over = true; break end
    end
    for _, q in ipairs(queues) do
      if left_over then break end
      if q.at <= #q.items then left_over = true end
    end
    if left_over then
      out[4] = 1
    else
      flush_writes()
      for _, q in ipairs(queues) do
        if not q.exhausted and redis.call('ZCARD', queue_key(q.type)) > 0 then out[4] = 1; break end
      end
    end
  end
  local left_list = {}
  for k in pairs(left) do left_list[#left_list + 1] = k end
  out[5] = table.concat(left_list, ',')
  return out
end
