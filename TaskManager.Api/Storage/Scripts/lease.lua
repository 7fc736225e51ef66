-- Hands a worker up to N queued tasks that it can run (see lease_for in common.lua: which tasks,
-- in what order, and what it returns).
-- KEYS: none; touches worker:{id}, paused, model:{name}, queue:{type}, task:{id}, idx:*, leases,
--   deadlines, stats:wait:{type}; publishes on ev:{id} for a followed task, on cancels for an idle worker.
-- ARGV[1] worker id   ARGV[2] now (ms)   ARGV[3] max tasks   ARGV[4] lease TTL (ms)
-- ARGV[5] token base (random; each task's lease token is base:n)   ARGV[6] depth
-- ARGV[7] workers heard from since this time (ms) count as live
-- Returns: as lease_for.
return lease_for(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
