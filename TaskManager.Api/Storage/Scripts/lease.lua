-- Hands a worker up to N queued tasks that it can run: a type it serves, enough free GPU memory,
-- a matching GPU. Among those: higher priority first; then a task whose model it has loaded (or
-- that names none); then the oldest. A task whose model this worker lacks but another live worker
-- with free capacity has loaded is left for that worker. Only the first `depth` tasks of each
-- queue are considered, so a lease costs the same however long the queues are.
-- KEYS: none; touches worker:{id}, paused, model:{name}, queue:{type}, task:{id}, idx:*, leases,
--   deadlines, stats:wait:{type}; publishes on ev:{id} for a followed task, on cancels for an idle worker.
-- ARGV[1] worker id   ARGV[2] now (ms)   ARGV[3] max tasks   ARGV[4] lease TTL (ms)
-- ARGV[5] token base (random; each task's lease token is base:n)   ARGV[6] depth
-- ARGV[7] workers heard from since this time (ms) count as live
-- Returns: {'unknown_worker'} or {'ok', types (comma list), models (comma list), more (1 when
--   tasks remain queued), left for others ('type|model' comma list), task...}, each task {id,
--   token, type, model, input, metadata, attempt, max attempts, timeout (s), deadline (ms),
--   traceparent, wait (ms)}.
local worker = ARGV[1]
local w = redis.call('HMGET', worker_key(worker), 'types', 'gpu_free_mb', 'gpu_names', 'models', 'draining', 'idle')
if not w[1] then return {'unknown_worker'} end
local out = {'ok', w[1], w[4] or '', 0, ''}
if w[5] == '1' then return out end

local now, max_tasks, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local depth, live_since = tonumber(ARGV[6]), tonumber(ARGV[7])
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
  local token = ARGV[5] .. ':' .. taken
  local attempt = tonumber(f[6]) + 1
  local deadline = now + tonumber(f[5]) * 1000
  -- 'rp': this attempt's 'running' event is implied, not stored (see emit in common.lua).
  redis.call('HSET', tk, 'status', 'running', 'worker', worker, 'token', token,
    'started', ARGV[2], 'attempt', attempt, 'rp', '1')
  -- A retry starts without the last attempt's progress; a first attempt has none to clear.
  if attempt > 1 then redis.call('HDEL', tk, 'progress', 'progress_message', 'chunks') end
  later('ZADD', LEASES, now + ttl, id)
  later('ZADD', DEADLINES, deadline, id)
  count_worker(worker, 'running', 1)
  move_index_only(id, pick.type, f[1], 'running', f[13])
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
