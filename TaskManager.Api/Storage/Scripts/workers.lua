-- Lists workers, most recently heard from first.
-- KEYS: none; reads workers, worker:{id}.
-- ARGV[1] the most to list
-- Returns: a list of worker hashes (flat field/value lists).
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', WORKERS, 0, tonumber(ARGV[1]) - 1)) do
  local h = redis.call('HGETALL', worker_key(id))
  if #h > 0 then out[#out + 1] = h end
end
return out
