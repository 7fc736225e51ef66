-- Runs ended tasks again in bulk, for an admin: walks the final tasks by completion time from a
-- cursor, and retries each whose status, type and tenant match (retry_ended in
-- lib/lifecycle.lua). A retried task leaves the finished set, so the walk never meets it twice.
-- KEYS[1] finished
-- ARGV[1] now (ms)   ARGV[2] from (ms, completion time)   ARGV[3] batch size   ARGV[7] how many
--   entries at `from` to skip (read before and left alone)
-- ARGV[4] statuses (comma list, each in RETRYABLE)   ARGV[5] types (comma list)
-- ARGV[6] tenants (comma list, '' for any)
-- Also touches: task:{id}, queue:{type}, idx:*, start_deadlines, evlist:{id}; publishes on notify,
--   and on ev:{id} when a task is followed.
-- Returns: {retried, next, skip}: how many were queued again, and where to go on from: the
--   completion time ('' when the walk is done) and how many entries at that time to skip.
local now, batch = tonumber(ARGV[1]), tonumber(ARGV[3])
local statuses, types, tenants = {}, {}, nil
for _, s in ipairs(split(ARGV[4])) do statuses[s] = true end
for _, s in ipairs(split(ARGV[5])) do types[s] = true end
if ARGV[6] ~= '' then
  tenants = {}
  for _, s in ipairs(split(ARGV[6])) do tenants[s] = true end
end
local from, skip = ARGV[2], tonumber(ARGV[7])
local entries = call('ZRANGEBYSCORE', KEYS[1], from, now, 'WITHSCORES', 'LIMIT', skip, batch)
if #entries == 0 then return {0, '', 0} end
-- A retried task leaves the set; one left alone stays, and is skipped next time. Those at the
-- last time read are counted, to be skipped from there.
local last = entries[#entries]
local kept = 0
if tonumber(last) == tonumber(from) then kept = skip end
local retried = 0
for i = 1, #entries, 2 do
  local id = entries[i]
  local tk = task_key(id)
  local t = read_ended(tk)
  if t.status and statuses[t.status] and RETRYABLE[t.status] and types[t.type]
    and (tenants == nil or tenants[tenant_of(t.tenant)]) then
    retry_ended(id, tk, t, now)
    retried = retried + 1
  elseif entries[i + 1] == last then
    kept = kept + 1
  end
end
if #entries / 2 < batch then return {retried, '', 0} end
return {retried, last, kept}
