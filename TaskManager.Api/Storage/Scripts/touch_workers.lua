-- Keeps alive the workers whose idle heartbeat an API replica is holding (see heartbeat.lua): their
-- last heartbeat time becomes now, as if each had just sent one. A worker forgotten meanwhile is
-- not brought back.
-- KEYS[1] workers
-- ARGV[1] now (ms)   ARGV[2..] worker ids
-- Also touches: worker:{id}.
-- Returns: the number kept alive.
local n = 0
for i = 2, #ARGV do
  if call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i]) == 1 then
    call('HSET', worker_key(ARGV[i]), 'last_seen', ARGV[1])
    n = n + 1
  end
end
return n
