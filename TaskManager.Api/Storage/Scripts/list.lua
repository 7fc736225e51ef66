-- Lists tasks newest first, one page after a cursor, from the listing indexes the caller names
-- (a tenant's tasks of a status and type each), of one model when asked. Each index gives at most
-- limit+1 ids (SCAN_FACTOR times that with a model, whose candidates are checked one by one), so
-- the cost is bounded by the page size and the number of indexes, never by the number of tasks
-- stored.
-- KEYS: idx:{tenant}:{status}:{type} of each tenant, status and type of the filter.
-- ARGV[1] limit   ARGV[2] cursor (the last id of the previous page) or ''   ARGV[3] model or ''
-- Also reads: task:{id}.
-- Returns REPLY.PAGE: more (1 when another page may follow), tasks (hashes as flat lists), cursor
--   (with a model: the last id looked at, where the next page starts; a page may then hold fewer
--   tasks than the limit, even none, and still have more after it).
local SCAN_FACTOR = 10
local limit = tonumber(ARGV[1])
local model = ARGV[3] or ''
local max = '+'
if ARGV[2] ~= '' then max = '(' .. ARGV[2] end
-- The first `window` ids of the indexes merged are the first `window` of each index's own.
local window = model == '' and limit or limit * SCAN_FACTOR

local ids = {}
for _, index in ipairs(KEYS) do
  for _, id in ipairs(call('ZRANGE', index, max, '-', 'BYLEX', 'REV', 'LIMIT', 0, window + 1)) do ids[#ids + 1] = id end
end
table.sort(ids, function(a, b) return a > b end)

local page = {more = 0, tasks = {}, cursor = ''}
for i, id in ipairs(ids) do
  if i > window or #page.tasks == limit then page.more = 1; break end
  if model == '' or call('HGET', task_key(id), 'model') == model then page.tasks[#page.tasks + 1] = task_hash(id) end
  page.cursor = id
end
return REPLY.PAGE(page.more, page.tasks, page.cursor)
