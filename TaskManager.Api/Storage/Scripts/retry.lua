-- Runs an ended task again, at a client's request: from a final state in RETRYABLE (failed,
-- timed_out, canceled, expired) back to queued with a fresh attempt budget, its history kept
-- (retry_ended in lib/lifecycle.lua).
-- KEYS[1] task:{id}
-- ARGV[1] task id   ARGV[2] now (ms)   ARGV[3] the caller's tenant ('*': any)
-- Also touches: queue:{type}, idx:*, finished, start_deadlines, evlist:{id}; publishes on notify,
--   and on ev:{id} when the task is followed.
-- Returns REPLY.OUTCOME: 'ok' with 'queued', 'not_found' (also another tenant's task) or 'conflict'
--   with the status.
local tk = KEYS[1]
local t = read_ended(tk)
if not t.status or not tenant_allows(t.tenant, ARGV[3]) then return REPLY.OUTCOME('not_found') end
if not RETRYABLE[t.status] then return REPLY.OUTCOME('conflict', t.status) end
retry_ended(ARGV[1], tk, t, tonumber(ARGV[2]))
return REPLY.OUTCOME('ok', 'queued', t.type)
