-- Lists workers, most recently heard from first.
-- KEYS[1] workers
-- ARGV[1] the most to list
-- Also reads: worker:{id}.
-- Returns: worker hashes (flat field/value lists).
local out = {}
for _, id in ipairs(call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  local h = call('HGETALL', worker_key(id))
  if #h > 0 then out[#out + 1] = h end
end
return out
