-- Drains a worker: it leases nothing more and finishes what it runs; its heartbeat tells it so.
-- KEYS[1] worker:{id}
-- ARGV[1] worker id
-- Publishes on cancels (wakes its held heartbeat, which answers at once with the news).
-- Returns: 1, or 0 for an unknown worker.
if call('EXISTS', KEYS[1]) == 0 then return 0 end
call('HSET', KEYS[1], 'draining', 1)
call('PUBLISH', CANCELS, ARGV[1])
return 1
