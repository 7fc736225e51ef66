-- Reads the statistics: stored tasks by status and type for the listing indexes the caller names
-- (its tenants'), queue depths, paused types, all-time totals, the last 15 minutes of finishes,
-- and the wait and run histograms. Every read is O(1) or bounded by the number of types,
-- statuses, tenants and buckets: its cost does not grow with the number of tasks stored.
-- KEYS[1] stats:totals   KEYS[2 ..] idx:{tenant}:{status}:{type} of each tenant, status and type
-- ARGV[1] now (ms)
-- Also reads: queue:{type}, paused, stats:min:{minute}, stats:wait:{type}, stats:run:{type}.
-- Returns REPLY.STATS: counts ({status, type, n, ...} over the indexes), depths ({type, n, ...}),
--   paused types, totals (hash), minutes ({minutes ago, hash, ...} for 0..14), wait and run
--   ({type, hash, ...}).
local tally, order = {}, {}
for i = 2, #KEYS do
  local n = call('ZCARD', KEYS[i])
  if n > 0 then
    -- idx:{tenant}:{status}:{type}: the status and type are its last two parts (neither holds a ':').
    local status, ttype = string.match(KEYS[i], ':([^:]+):([^:]+)$')
    local key = status .. '|' .. ttype
    if not tally[key] then tally[key] = {status, ttype, 0}; order[#order + 1] = key end
    tally[key][3] = tally[key][3] + n
  end
end
local counts = {}
for _, key in ipairs(order) do
  for _, v in ipairs(tally[key]) do counts[#counts + 1] = v end
end

local depths, wait, run = {}, {}, {}
for _, t in ipairs(TASK_TYPES) do
  depths[#depths + 1] = t
  depths[#depths + 1] = call('ZCARD', queue_key(t))
  wait[#wait + 1] = t
  wait[#wait + 1] = call('HGETALL', histogram_key('wait', t))
  run[#run + 1] = t
  run[#run + 1] = call('HGETALL', histogram_key('run', t))
end

local minutes = {}
local current = math.floor(tonumber(ARGV[1]) / 60000)
for ago = 0, 14 do
  minutes[#minutes + 1] = ago
  minutes[#minutes + 1] = call('HGETALL', stats_minute_key(current - ago))
end

return REPLY.STATS(counts, depths, call('SMEMBERS', PAUSED), call('HGETALL', KEYS[1]), minutes, wait, run)
