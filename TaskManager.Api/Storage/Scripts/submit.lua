-- Creates a task and queues it, then wakes a waiting lease on any API replica. With an
-- idempotency key, a repeat of the same request returns the task the first one created (two
-- racing requests cannot both create one: the script runs alone), and another request under the
-- same key is refused. A tenant at its cap of queued tasks is refused.
-- KEYS: none; touches task:{id}, queue:{type}, idx:{tenant}:queued:*, idem:{tenant}:{key},
--   events:{id}; publishes on notify.
-- ARGV[1] id            ARGV[2] type          ARGV[3] priority       ARGV[4] now (ms)
-- ARGV[5] queue score   ARGV[6] input JSON    ARGV[7] timeout (s)    ARGV[8] max attempts
-- ARGV[9] model or ''   ARGV[10] metadata JSON or ''   ARGV[11] webhook or ''   ARGV[12] traceparent or ''
-- ARGV[13] required GPU memory (MB) or ''   ARGV[14] required GPU name pattern or ''
-- ARGV[15] tenant   ARGV[16] the tenant's cap of queued tasks
-- ARGV[17] idempotency key or ''   ARGV[18] hash of the request   ARGV[19] the key's lifetime (s)
-- Returns: {'created'} | {'existing', task hash} | {'mismatch'} | {'gone'} (the key's task was
--   deleted) | {'queue_full', queued count}. The notification names the model too (type|model),
--   so that a waiting worker that has it loaded is woken first.
local id, ttype, tenant = ARGV[1], ARGV[2], ARGV[15]

local ik
if ARGV[17] ~= '' then
  ik = idem_key(tenant, ARGV[17])
  local existing = redis.call('GET', ik)
  if existing then
    local bar = string.find(existing, '|', 1, true)
    if string.sub(existing, bar + 1) ~= ARGV[18] then return {'mismatch'} end
    local h = redis.call('HGETALL', task_key(string.sub(existing, 1, bar - 1)))
    if #h == 0 then return {'gone'} end
    return {'existing', h}
  end
end

local queued = 0
for _, t in ipairs(TASK_TYPES) do queued = queued + redis.call('ZCARD', index_key(tenant, 'queued', t)) end
if queued >= tonumber(ARGV[16]) then return {'queue_full', queued} end

local tk = task_key(id)
redis.call('HSET', tk, 'id', id, 'type', ttype, 'status', 'queued', 'priority', ARGV[3],
  'created', ARGV[4], 'qs', ARGV[5], 'input', ARGV[6], 'timeout', ARGV[7],
  'max_attempts', ARGV[8], 'attempt', 0, 'tenant', tenant, 'queued_at', ARGV[4])
local optional = {model = ARGV[9], metadata = ARGV[10], webhook = ARGV[11], trace = ARGV[12],
  req_mem = ARGV[13], req_gpu = ARGV[14]}
for field, value in pairs(optional) do
  if value ~= '' then redis.call('HSET', tk, field, value) end
end
redis.call('ZADD', queue_key(ttype), ARGV[5], id)
redis.call('ZADD', index_key(tenant, 'queued', ttype), 0, id)
if ik then redis.call('SET', ik, id .. '|' .. ARGV[18], 'EX', tonumber(ARGV[19])) end
emit(id, 'status', '0', '{"status":"queued"}')
redis.call('HINCRBY', STATS_TOTALS, ttype .. ':submitted', 1)
if ARGV[9] ~= '' then
  redis.call('PUBLISH', NOTIFY, ttype .. '|' .. ARGV[9])
else
  redis.call('PUBLISH', NOTIFY, ttype)
end
return {'created'}
