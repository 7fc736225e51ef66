-- Reads the statistics: stored tasks by tenant, status and type (index set sizes), queue depths,
-- paused types, all-time totals, the last 15 minutes of finishes, and the wait and run
-- histograms. Every read is O(1) or bounded by the number of types, statuses, tenants and
-- buckets: its cost does not grow with the number of tasks stored.
-- KEYS: none; reads idx:*, queue:{type}, paused, stats:*.
-- ARGV[1] now (ms)   ARGV[2] tenants (comma list)   ARGV[3] statuses (comma list)
-- Returns: {counts {status, type, n, ...}, depths {type, n, ...}, paused types, totals hash,
--   minutes {minutes ago, hash, ...} for 0..14, wait {type, hash, ...}, run {type, hash, ...}}.
local counts = {}
local tally = {}
for tenant in string.gmatch(ARGV[2], '[^,]+') do
  for s in string.gmatch(ARGV[3], '[^,]+') do
    for _, t in ipairs(TASK_TYPES) do
      local n = redis.call('ZCARD', index_key(tenant, s, t))
      if n > 0 then tally[s .. '|' .. t] = (tally[s .. '|' .. t] or 0) + n end
    end
  end
end
for key, n in pairs(tally) do
  local bar = string.find(key, '|', 1, true)
  counts[#counts + 1] = string.sub(key, 1, bar - 1)
  counts[#counts + 1] = string.sub(key, bar + 1)
  counts[#counts + 1] = n
end

local depths, wait, run = {}, {}, {}
for _, t in ipairs(TASK_TYPES) do
  depths[#depths + 1] = t
  depths[#depths + 1] = redis.call('ZCARD', queue_key(t))
  wait[#wait + 1] = t
  wait[#wait + 1] = redis.call('HGETALL', histogram_key('wait', t))
  run[#run + 1] = t
  run[#run + 1] = redis.call('HGETALL', histogram_key('run', t))
end

local minutes = {}
local current = math.floor(tonumber(ARGV[1]) / 60000)
for ago = 0, 14 do
  minutes[#minutes + 1] = ago
  minutes[#minutes + 1] = redis.call('HGETALL', stats_minute_key(current - ago))
end

return {counts, depths, redis.call('SMEMBERS', PAUSED), redis.call('HGETALL', STATS_TOTALS), minutes, wait, run}
