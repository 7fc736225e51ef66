-- Hands a worker up to N queued tasks of the types it registered: the lowest queue score first
-- (highest priority, then oldest), across its types.
-- KEYS: none; touches worker:{id}, queue:{type}, task:{id}, idx:*, leases, deadlines.
-- ARGV[1] worker id   ARGV[2] now (ms)   ARGV[3] max tasks   ARGV[4] lease TTL (ms)
-- ARGV[5] token base (random; each task's lease token is base:n)
-- Returns: {'unknown_worker'} or {'ok', types (comma list), more (1 when tasks remain queued),
--   task...}, each task {id, token, type, model, input, metadata, attempt, max attempts,
--   timeout (s), deadline (ms), traceparent}.
local worker = ARGV[1]
local types = redis.call('HGET', worker_key(worker), 'types')
if not types then return {'unknown_worker'} end
local now, max_tasks, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

local queues = {}
for t in string.gmatch(types, '[^,]+') do queues[#queues + 1] = t end

local out = {'ok', types, 0}
local taken = 0
while taken < max_tasks do
  local best, best_score, best_type
  for _, t in ipairs(queues) do
    local head = redis.call('ZRANGE', queue_key(t), 0, 0, 'WITHSCORES')
    if head[1] then
      local score = tonumber(head[2])
      if not best or score < best_score or (score == best_score and head[1] < best) then
        best, best_score, best_type = head[1], score, t
      end
    end
  end
  if not best then break end
  redis.call('ZREM', queue_key(best_type), best)

  local tk = task_key(best)
  local f = redis.call('HMGET', tk, 'status', 'timeout', 'attempt', 'model', 'input', 'metadata',
    'max_attempts', 'trace')
  -- A queue entry whose task is gone or no longer queued is dropped; it cannot be leased.
  if f[1] and can_move(f[1], 'running') then
    taken = taken + 1
    local token = ARGV[5] .. ':' .. taken
    local attempt = tonumber(f[3]) + 1
    local deadline = now + tonumber(f[2]) * 1000
    redis.call('HSET', tk, 'status', 'running', 'worker', worker, 'token', token,
      'started', ARGV[2], 'attempt', attempt)
    redis.call('HDEL', tk, 'progress', 'progress_message')
    redis.call('ZADD', LEASES, now + ttl, best)
    redis.call('ZADD', DEADLINES, deadline, best)
    move_index(best, best_type, f[1], 'running')
    out[#out + 1] = {best, token, best_type, f[4] or '', f[5], f[6] or '', attempt, f[7], f[2],
      deadline, f[8] or ''}
  end
end

-- Only a full hand may leave work behind; then the caller passes the wake-up on.
if taken == max_tasks then
  for _, t in ipairs(queues) do
    if redis.call('ZCARD', queue_key(t)) > 0 then out[3] = 1; break end
  end
end
return out
