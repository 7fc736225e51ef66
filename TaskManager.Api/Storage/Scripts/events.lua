-- Reads a slice of a task's stored events, with what its hash implies after them: the 'running'
-- of an attempt that has stored nothing yet, and a 'succeeded' (see emit in common.lua). Read in
-- one script, so the slice and the hash agree.
-- KEYS: none; reads task:{id}, evlist:{id}; with ARGV[4] '1', sets the task's 'w' (followed).
-- ARGV[1] task id   ARGV[2] first stored event to read (0-based)   ARGV[3] last one (inclusive)
-- ARGV[4] '1' when the reader follows the task live: from now on its events are published
--   (the follower subscribes before it calls this, so it misses nothing).
-- Returns: {events stored, status ('' when no task), attempt, rp, the last stored event when the
--   task succeeded ('' else), stored events...}.
local id = ARGV[1]
local tk = task_key(id)
local f = redis.call('HMGET', tk, 'status', 'attempt', 'rp', 'w')
if f[1] and ARGV[4] == '1' and f[4] ~= '1' then redis.call('HSET', tk, 'w', '1') end
local key = events_key(id)
local n = redis.call('LLEN', key)
local out = {n, f[1] or '', tostring(attempt_of(f[2])), f[3] or '', ''}
if f[1] == 'succeeded' and n > 0 then out[5] = redis.call('LINDEX', key, -1) end
if tonumber(ARGV[2]) < n and tonumber(ARGV[3]) >= tonumber(ARGV[2]) then
  for _, e in ipairs(redis.call('LRANGE', key, ARGV[2], ARGV[3])) do out[#out + 1] = e end
end
return out
