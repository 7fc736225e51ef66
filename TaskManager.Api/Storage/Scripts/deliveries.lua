-- Reads webhook deliveries: those of a task (KEYS[1] its deliveries list), oldest first, or one
-- (KEYS[1] the delivery itself).
-- KEYS[1] deliveries:{task id} or delivery:{id}
-- ARGV[1] 'task', or 'one' with ARGV[2] the delivery id
-- Returns: a list of {id, hash as a flat field/value list}; a delivery past its keeping is left out.
local ids
if ARGV[1] == 'one' then
  ids = {ARGV[2]}
else
  ids = call('LRANGE', KEYS[1], 0, -1)
end
local out = {}
for _, id in ipairs(ids) do
  local h = call('HGETALL', delivery_key(id))
  if #h > 0 then out[#out + 1] = {id, h} end
end
return out
