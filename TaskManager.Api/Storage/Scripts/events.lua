-- Reads a slice of a task's stored events, with what its hash implies after them: the 'running'
-- of an attempt that has stored nothing yet, and a 'succeeded' (see lib/events.lua). Read in one
-- script, so that the slice and the hash agree.
-- KEYS[1] task:{id}   KEYS[2] evlist:{id}
-- ARGV[1] first stored event to read (0-based)   ARGV[2] last one (inclusive; below the first: none,
--   for a reader that only follows the task and wants its status)
-- ARGV[3] '1' when the reader follows the task live: from now on its events are published (the
--   follower subscribes before it calls this, so it misses nothing); the task's 'w' is set.
-- Returns REPLY.EVENTS: stored (how many events are stored), status ('' when no task), attempt,
--   running_pending ('1' when the attempt's 'running' is implied), events (the slice).
local tk, key = KEYS[1], KEYS[2]
local t = read_fields(tk, 'status', 'attempt', 'rp', 'w')
if t.status and ARGV[3] == '1' and t.w ~= '1' then call('HSET', tk, 'w', '1') end
local n = call('LLEN', key)
local events = {}
if tonumber(ARGV[1]) < n and tonumber(ARGV[2]) >= tonumber(ARGV[1]) then
  events = call('LRANGE', key, ARGV[1], ARGV[2])
end
return REPLY.EVENTS(n, t.status, attempt_of(t.attempt), t.rp, events)
