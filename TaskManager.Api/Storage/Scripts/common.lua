-- Shared by every script; prepended after the key definitions and TRANSITIONS (the state
-- machine, generated from Domain/TaskState.cs).

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

-- Moves a task between the status indexes used for listing.
local function move_index(id, ttype, from, to)
  redis.call('ZREM', index_key(from, ttype), id)
  redis.call('ZADD', index_key(to, ttype), 0, id)
end

-- Ends a running attempt's bookkeeping: no lease, no deadline, no current token.
local function end_attempt(tk, id)
  redis.call('ZREM', LEASES, id)
  redis.call('ZREM', DEADLINES, id)
  redis.call('HDEL', tk, 'token')
end

-- Reads the fields a worker report checks. Returns status, type, or nil and an error reply.
local function check_report(tk, token)
  local f = redis.call('HMGET', tk, 'status', 'token', 'type')
  if not f[1] then return nil, nil, {'not_found'} end
  if not f[2] or f[2] ~= token then return nil, nil, {'stale', f[1]} end
  return f[1], f[3], nil
end
