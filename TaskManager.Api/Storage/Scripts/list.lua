-- Lists tasks newest first, one page after a cursor, from the listing indexes the caller names
-- (a tenant's tasks of a status and type each). Each index gives at most limit+1 ids, so the cost
-- is bounded by the page size and the number of indexes, never by the number of tasks stored.
-- KEYS: idx:{tenant}:{status}:{type} of each tenant, status and type of the filter.
-- ARGV[1] limit   ARGV[2] cursor (the last id of the previous page) or ''
-- Also reads: task:{id}.
-- Returns REPLY.PAGE: more (1 when another page follows), tasks (hashes as flat lists).
local limit = tonumber(ARGV[1])
local max = '+'
if ARGV[2] ~= '' then max = '(' .. ARGV[2] end

local ids = {}
for _, index in ipairs(KEYS) do
  for _, id in ipairs(call('ZRANGE', index, max, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit + 1)) do ids[#ids + 1] = id end
end
table.sort(ids, function(a, b) return a > b end)

local page = {more = 0, tasks = {}}
for i, id in ipairs(ids) do
  if i > limit then page.more = 1; break end
  page.tasks[#page.tasks + 1] = task_hash(id)
end
return REPLY.PAGE(page.more, page.tasks)
