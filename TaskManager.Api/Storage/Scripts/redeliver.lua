-- Asks for a delivery to be sent again (a client's redeliver): it is pending again, and the
-- scheduler sends it under its webhook-id with a fresh attempt count. A delivery already pending
-- is left alone, so that two requests at once send it once.
-- KEYS[1] delivery:{id}
-- ARGV[1] delivery id   ARGV[2] the task id it must belong to
-- Also touches: redeliver.
-- Returns: 1, or 0 when the task has no such delivery or it is pending.
local v = call('HMGET', KEYS[1], 'task', 'state')
if v[1] ~= ARGV[2] or v[2] == 'pending' then return 0 end
call('HSET', KEYS[1], 'state', 'pending')
call('RPUSH', REDELIVER, ARGV[1])
return 1
