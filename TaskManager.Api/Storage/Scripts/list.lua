-- Lists tasks newest first, filtered by tenant, status and type, one page after a cursor. Merges
-- the idx:{tenant}:{status}:{type} sets of the filter; each gives at most limit+1 ids, so the cost
-- is bounded by the page size and the number of sets, never by the number of tasks stored.
-- KEYS: none; reads idx:*, task:{id}.
-- ARGV[1] limit   ARGV[2] cursor (the last id of the previous page) or ''
-- ARGV[3] statuses (comma list)   ARGV[4] types (comma list)   ARGV[5] tenants (comma list)
-- Returns: {more (1 when another page follows), task hash list...}.
local limit = tonumber(ARGV[1])
local max = '+'
if ARGV[2] ~= '' then max = '(' .. ARGV[2] end

local ids = {}
for tenant in string.gmatch(ARGV[5], '[^,]+') do
  for s in string.gmatch(ARGV[3], '[^,]+') do
    for t in string.gmatch(ARGV[4], '[^,]+') do
      local page = redis.call('ZRANGE', index_key(tenant, s, t), max, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit + 1)
      for _, id in ipairs(page) do ids[#ids + 1] = id end
    end
  end
end
table.sort(ids, function(a, b) return a > b end)

local out = {0}
for i, id in ipairs(ids) do
  if i > limit then out[1] = 1; break end
  out[#out + 1] = task_hash(id)
end
return out
