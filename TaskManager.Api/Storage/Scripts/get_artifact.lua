-- Reads one artifact of a task.
-- KEYS[1] artifacts:{id}   KEYS[2] artifact:{id}:{name}
-- ARGV[1] name
-- Returns REPLY.ARTIFACT (content type, bytes), or an empty list when there is no such artifact.
local ctype = call('HGET', KEYS[1], ARGV[1])
if not ctype then return {} end
local data = call('GET', KEYS[2])
if not data then return {} end
return REPLY.ARTIFACT(ctype, data)
