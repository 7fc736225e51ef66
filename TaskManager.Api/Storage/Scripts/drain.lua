-- Drains a worker: it leases nothing more and finishes what it runs; its heartbeat tells it so.
-- KEYS: none; touches worker:{id}; publishes on cancels (wakes its held heartbeat).
-- ARGV[1] worker id
-- Returns: 1, or 0 for an unknown worker.
local wk = worker_key(ARGV[1])
if redis.call('EXISTS', wk) == 0 then return 0 end
redis.call('HSET', wk, 'draining', 1)
-- Its held heartbeat, if any, answers now with the news.
redis.call('PUBLISH', CANCELS, ARGV[1])
return 1
