-- Placement: which queued tasks a worker is given (lease_for).

-- A candidate task's fields a lease reads: the first four decide, the rest go to the worker.
local function read_candidate(tk)
  local v = call('HMGET', tk, 'status', 'model', 'req_mem', 'req_gpu', 'timeout', 'attempt', 'input', 'metadata',
    'max_attempts', 'trace', 'queued_at', 'created', 'tenant', 'w', 'webhook_events')
  return {status = v[1], model = v[2], req_mem = v[3], req_gpu = v[4], timeout = v[5], attempt = v[6], input = v[7],
    metadata = v[8], max_attempts = v[9], trace = v[10], queued_at = v[11], created = v[12], tenant = v[13], w = v[14],
    webhook_events = v[15]}
end

-- Hands a worker up to N queued tasks that it can run: a type it serves, enough free GPU memory,
-- a matching GPU. Among those: higher priority first; then a task whose model it has loaded (or
-- that names none); then the oldest. A task whose model this worker lacks but another live worker
-- with free capacity has loaded is left for that worker. Only the first `depth` tasks of each
-- queue are considered, so a lease costs the same however long the queues are.
-- Called by lease.lua, by submit.lua to hand a new task straight to a lease waiting on the
-- caller's replica, and by complete_batch.lua after the results. Arguments (numbers may come as
-- strings, as in ARGV): the worker's id, now (ms), the most tasks to take, the lease TTL (ms), a
-- token base (random; each task's lease token is base:n), the depth, and the time (ms) since
-- which a worker heard from counts as live.
-- Returns the fields of a REPLY.LEASE (lease_reply makes the reply): code 'unknown_worker' or
-- 'ok'; the worker's types and models (comma lists); more (1 when tasks remain queued that it
-- could take); left_for_others ('type|model' comma list: the caller wakes those workers); tasks
-- (a REPLY.LEASED_TASK each); and, not in the reply, ids: the ids of the tasks taken.
local function lease_for(worker, now_ms, max_tasks_arg, ttl_ms, token_base, depth_arg, live_since_ms)
  local wk = worker_key(worker)
  local w = read_fields(wk, 'types', 'gpu_free_mb', 'gpu_names', 'models', 'draining', 'idle')
  if not w.types then return {code = 'unknown_worker', ids = {}} end
  local answer = {code = 'ok', types = w.types, models = w.models, more = 0, tasks = {}, ids = {}}
  if w.draining == '1' then return answer end

  local now, max_tasks, ttl = tonumber(now_ms), tonumber(max_tasks_arg), tonumber(ttl_ms)
  local depth, live_since = tonumber(depth_arg), tonumber(live_since_ms)
  local budget = tonumber(w.gpu_free_mb) or 0
  local gpu_names = w.gpu_names or ''
  local loaded = {}
  for _, m in ipairs(split(w.models or '')) do loaded[m] = true end

  -- A paused type's queue gives nothing.
  local types = split(w.types)
  local paused = {}
  local flags = call('SMISMEMBER', PAUSED, unpack(types))
  for i, t in ipairs(types) do paused[t] = flags[i] == 1 end

  -- The candidates: the queues' entries merged in score order (then by id, as ZRANGE orders ties),
  -- read lazily, a page at a time, at most `depth` per queue. A lease of one task usually reads a
  -- couple of entries: reading and sorting `depth` of every queue cost more than the rest of it.
  local queues, queue_of = {}, {}
  for _, t in ipairs(types) do
    if not paused[t] then
      -- items: the page read last (id, score, ...); at: its next entry; read: entries read so far;
      -- removed: entries this call took out of the queue (they no longer count in its offsets);
      -- page: the next page's size (doubling); exhausted: a page came back short.
      local q = {type = t, key = queue_key(t), items = {}, at = 1, read = 0, removed = 0,
        page = math.min(depth, max_tasks + 1), exhausted = false}
      queues[#queues + 1] = q
      queue_of[t] = q
    end
  end
  -- Takes a candidate out of its queue.
  local function remove(c)
    c.done = true
    local q = queue_of[c.type]
    q.removed = q.removed + 1
    later('ZREM', q.key, c.id)
  end
  -- The queue `q` with its next entry in hand, or nil when it has none left to give.
  local function head(q)
    if q.at <= #q.items then return q end
    if q.exhausted or q.read >= depth then return nil end
    local n = math.min(q.page, depth - q.read)
    local from = q.read - q.removed
    q.items = call('ZRANGE', q.key, from, from + n - 1, 'WITHSCORES')
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

  local function fits(c)
    if c.f.req_mem and tonumber(c.f.req_mem) > budget then return false end
    if c.f.req_gpu and not string.find(gpu_names, string.lower(c.f.req_gpu), 1, true) then return false end
    return true
  end

  -- True when another live, undrained worker with a free slot has `model` loaded.
  local held = {}
  local function held_for_other(model)
    if held[model] == nil then
      held[model] = false
      for _, other in ipairs(call('SMEMBERS', model_key(model))) do
        if other ~= worker then
          local o = read_fields(worker_key(other), 'last_seen', 'draining', 'running', 'capacity')
          if o.last_seen and tonumber(o.last_seen) >= live_since and o.draining ~= '1'
              and tonumber(o.running or '0') < tonumber(o.capacity or '1') then
            held[model] = true
            break
          end
        end
      end
    end
    return held[model]
  end

  local function priority_band(score) return math.floor(score / PRIORITY_BAND) end

  local left = {}
  local taken = 0
  while taken < max_tasks do
    local pick, fallback
    for i = 1, math.huge do
      local c = candidate(i)
      if not c then break end
      if not c.done then
        if fallback and priority_band(c.score) ~= priority_band(fallback.score) then break end
        c.f = c.f or read_candidate(task_key(c.id))
        if not c.f.status or not can_move(c.f.status, 'running') then
          -- A queue entry whose task is gone or no longer queued cannot be leased.
          remove(c)
        elseif fits(c) then
          if not c.f.model or loaded[c.f.model] then
            pick = c
            break
          end
          if held_for_other(c.f.model) then
            left[c.type .. '|' .. c.f.model] = true
          elseif not fallback then
            fallback = c
          end
        end
      end
    end
    pick = pick or fallback
    if not pick then break end

    local id, f = pick.id, pick.f
    remove(pick)
    local wait_ms = now - tonumber(f.queued_at or f.created)
    observe('wait', pick.type, wait_ms)
    taken = taken + 1
    local token = token_base .. ':' .. taken
    local attempt = attempt_of(f.attempt) + 1
    local deadline = now + tonumber(f.timeout) * 1000
    -- 'rp': this attempt's 'running' event is implied, not stored (see events.lua); followers
    -- are woken to read it.
    local tk = task_key(id)
    call('HSET', tk, 'status', 'running', 'worker', worker, 'token', token, 'started', now_ms, 'attempt', attempt, 'rp', '1')
    -- A retry starts without the last attempt's progress; a first attempt has none to clear.
    if attempt > 1 then call('HDEL', tk, 'progress', 'progress_message', 'chunks') end
    later('ZADD', LEASES, now + ttl, id)
    later('ZADD', DEADLINES, deadline, id)
    count_worker(worker, 'running', 1)
    move_listing(id, pick.type, f.status, 'running', tenant_of(f.tenant))
    wake_followers(id, {w = f.w})
    webhook_event(id, f.webhook_events, 'start')
    budget = budget - (tonumber(f.req_mem) or 0)
    -- The numbers the task's hash holds go as the text they are (max_attempts, timeout).
    answer.tasks[#answer.tasks + 1] = REPLY.LEASED_TASK(id, token, pick.type, f.model, f.input, f.metadata, attempt,
      f.max_attempts, f.timeout, deadline, f.trace, wait_ms)
    answer.ids[#answer.ids + 1] = id
  end

  -- A worker whose heartbeat is held idle (see heartbeat.lua) must send one with its new tasks
  -- before their leases lapse: wake the held heartbeat, on whichever replica holds it.
  if taken > 0 and w.idle == '1' then
    call('HSET', wk, 'idle', '0')
    call('PUBLISH', CANCELS, worker)
  end

  -- Only a full hand may leave work behind; then the caller passes the wake-up on. A candidate read
  -- and not taken is work left (a page holds one more than the hand, so this is the usual answer); a
  -- queue read to its end has nothing more; any other is counted.
  if taken == max_tasks then
    for _, c in ipairs(candidates) do
      if not c.done then answer.more = 1; break end
    end
    for _, q in ipairs(queues) do
      if q.at <= #q.items then answer.more = 1; break end
    end
    for _, q in ipairs(queues) do
      if answer.more == 1 then break end
      if not q.exhausted and call('ZCARD', q.key) > 0 then answer.more = 1 end
    end
  end
  local left_list = {}
  for k in pairs(left) do left_list[#left_list + 1] = k end
  answer.left_for_others = table.concat(left_list, ',')
  return answer
end

-- lease_for's answer as a REPLY.LEASE.
local function lease_reply(a)
  return REPLY.LEASE(a.code, a.types, a.models, a.more, a.left_for_others, a.tasks)
end
