-- Removes a task in a final state with its history, events, artifacts and index entries.
-- KEYS[1] task:{id}
-- ARGV[1] task id   ARGV[2] the caller's tenant ('*': any)
-- Also touches: attempts:{id}, evlist:{id}, artifacts:{id}, artifact:{id}:*, idx:*, finished.
-- Returns REPLY.OUTCOME: 'ok', 'not_found' (also another tenant's task) or 'conflict' with the status.
local id = ARGV[1]
local t = read_fields(KEYS[1], 'status', 'type', 'tenant')
if not t.status or not tenant_allows(t.tenant, ARGV[2]) then return REPLY.OUTCOME('not_found') end
if not is_final(t.status) then return REPLY.OUTCOME('conflict', t.status) end
delete_task(id, t.status, t.type, t.tenant)
return REPLY.OUTCOME('ok', t.status, t.type)
