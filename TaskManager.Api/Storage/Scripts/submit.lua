-- Creates a task and queues it, then wakes a waiting lease on any API replica.
-- KEYS: none; touches task:{id}, queue:{type}, idx:queued:{type}; publishes on notify.
-- ARGV[1] id            ARGV[2] type          ARGV[3] priority       ARGV[4] now (ms)
-- ARGV[5] queue score   ARGV[6] input JSON    ARGV[7] timeout (s)    ARGV[8] max attempts
-- ARGV[9] model or ''   ARGV[10] metadata JSON or ''   ARGV[11] webhook or ''   ARGV[12] traceparent or ''
-- ARGV[13] required GPU memory (MB) or ''   ARGV[14] required GPU name pattern or ''
-- Returns: 1. The notification names the model too (type|model), so that a waiting worker that
--   has it loaded is woken first.
local id, ttype = ARGV[1], ARGV[2]
local tk = task_key(id)
redis.call('HSET', tk, 'id', id, 'type', ttype, 'status', 'queued', 'priority', ARGV[3],
  'created', ARGV[4], 'qs', ARGV[5], 'input', ARGV[6], 'timeout', ARGV[7],
  'max_attempts', ARGV[8], 'attempt', 0)
local optional = {model = ARGV[9], metadata = ARGV[10], webhook = ARGV[11], trace = ARGV[12],
  req_mem = ARGV[13], req_gpu = ARGV[14]}
for field, value in pairs(optional) do
  if value ~= '' then redis.call('HSET', tk, field, value) end
end
redis.call('ZADD', queue_key(ttype), ARGV[5], id)
redis.call('ZADD', index_key('queued', ttype), 0, id)
emit(id, 'status', '0', '{"status":"queued"}')
if ARGV[9] ~= '' then
  redis.call('PUBLISH', NOTIFY, ttype .. '|' .. ARGV[9])
else
  redis.call('PUBLISH', NOTIFY, ttype)
end
return 1
