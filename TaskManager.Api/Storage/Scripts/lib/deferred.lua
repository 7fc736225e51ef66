-- Deferred writes and counters, and `call`, the one way every script reaches Redis.
--
-- A script may defer a sorted-set write (`later`) or a counter (`count`, `count_worker`) to its
-- end, so that the entries of many tasks in one key go in one command: a batch of tasks costs a
-- few commands per call where it would cost a few per task. Deferring never changes what a script
-- sees: `call` makes a key's deferred writes before any other command on that key, so a script
-- reads what it wrote. (A command naming several keys is checked on its first.) What is still
-- deferred when the script returns is written then (see `run` in LuaLibrary.cs).

local deferred_keys, deferred, counter_keys, counters, worker_order, worker_deltas, pending

-- Forgets the deferred writes (after they are made, or at the start of a call).
local function clear_deferred()
  deferred_keys, deferred = {}, {}
  counter_keys, counters = {}, {}
  worker_order, worker_deltas = {}, {}
  pending = {}
end

-- Makes every deferred write, in order per key.
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

-- A Redis command, after the deferred writes when its key has some.
local function call(command, key, ...)
  if pending[key] then flush_writes() end
  return redis.call(command, key, ...)
end

-- Defers a sorted-set write: later('ZADD', key, score, member) or later('ZREM', key, member).
-- Consecutive writes of one kind to one key merge into one command.
local function later(op, key, a, b)
  local ops = deferred[key]
  if not ops then
    ops = {}
    deferred[key] = ops
    deferred_keys[#deferred_keys + 1] = key
    pending[key] = true
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
    pending[key] = true
  end
  if not c.fields[field] then
    c.fields[field] = 0
    c.order[#c.order + 1] = field
  end
  c.fields[field] = c.fields[field] + n
end

-- Adds n to a worker's live count (running, completed or failed) at the end of the script; a
-- worker already forgotten is not brought back.
local function count_worker(worker, field, n)
  local d = worker_deltas[worker]
  if not d then
    d = {running = 0, completed = 0, failed = 0}
    worker_deltas[worker] = d
    worker_order[#worker_order + 1] = worker
    pending[worker_key(worker)] = true
  end
  d[field] = d[field] + n
end

-- Statistics (stats.lua reads them). A duration (ms) in a histogram, 'wait' (queued to started)
-- or 'run' (started to ended): its bucket and the sum (the count is the buckets' sum).
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

-- A task that reached a final status: all-time totals, and per minute for throughput (kept 20
-- minutes; the expiry is set when a minute's first count of a kind makes it).
local function count_finished(ttype, status, now)
  count(STATS_TOTALS, ttype .. ':' .. status, 1)
  count(stats_minute_key(math.floor(tonumber(now) / 60000)), ttype .. ':' .. status, 1, 1200)
end

-- n tasks of a type submitted.
local function count_submitted(ttype, n)
  count(STATS_TOTALS, ttype .. ':submitted', n)
end
