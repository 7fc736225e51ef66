-- Creates a task and queues it, then hands it to the waiting lease the caller names, or wakes a
-- waiting lease on any API replica. With an idempotency key, a repeat of the same request returns
-- the task the first one created (two racing requests cannot both create one: the script runs
-- alone), and another request under the same key is refused. A tenant at its cap of queued tasks
-- is refused.
-- KEYS[1] task:{id}   KEYS[2] queue:{type}   KEYS[3] idem:{tenant}:{key}, only with an idempotency key
-- ARGV[1] now (ms)   ARGV[2] tenant   ARGV[3] the tenant's cap of queued tasks
-- ARGV[4] hash of the request ('' without a key)   ARGV[5] the key's lifetime (s)
-- ARGV[6 ..] the task (TASK_VALUES values, see TASK_VALUE), then, when a lease waits on the
--   caller's replica, its worker's id, its most tasks, the lease TTL (ms), token base, depth and
--   live-since time (ms), as lease_for takes them. The lease runs after the task is stored, with
--   the same rules as lease.lua: the worker may not take the task, and it then stays queued and
--   is published. A task handed over this way is not published: no other lease need wake for it.
-- Also touches: idx:{tenant}:queued:*, stats:totals, and what lease_for touches; publishes on notify.
-- Returns REPLY.SUBMIT: code 'created' (lease: lease_for's answer when a lease was given),
--   'existing' (task: the first task's hash), 'mismatch', 'gone' (the key's task was deleted) or
--   'queue_full' (queued: the tenant's queued count).
local now, tenant = ARGV[1], ARGV[2]
local at = 6
local lease_at = at + TASK_VALUES

local ik = KEYS[3]
if ik then
  local existing = call('GET', ik)
  if existing then
    local bar = string.find(existing, '|', 1, true)
    if string.sub(existing, bar + 1) ~= ARGV[4] then return REPLY.SUBMIT('mismatch') end
    local h = task_hash(string.sub(existing, 1, bar - 1))
    if #h == 0 then return REPLY.SUBMIT('gone') end
    return REPLY.SUBMIT('existing', nil, h)
  end
end

local queued = queued_count(tenant)
if queued >= tonumber(ARGV[3]) then return REPLY.SUBMIT('queue_full', queued) end

local id, ttype, model = create_task(at, tenant, now)
if ik then call('SET', ik, id .. '|' .. ARGV[4], 'EX', tonumber(ARGV[5])) end
count_submitted(ttype, 1)

local handed
if ARGV[lease_at] then
  handed = lease_for(ARGV[lease_at], now, ARGV[lease_at + 1], ARGV[lease_at + 2], ARGV[lease_at + 3],
    ARGV[lease_at + 4], ARGV[lease_at + 5])
end
-- Still queued unless the lease took it.
local taken = false
for _, leased in ipairs(handed and handed.ids or {}) do
  if leased == id then taken = true; break end
end
if not taken then notify_work(ttype, model) end
return REPLY.SUBMIT('created', nil, nil, handed and lease_reply(handed))
