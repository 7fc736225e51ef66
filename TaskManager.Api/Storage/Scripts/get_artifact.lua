-- Reads one artifact of a task.
-- KEYS: none; reads artifacts:{id}, artifact:{id}:{name}.
-- ARGV[1] task id   ARGV[2] name
-- Returns: {content type, bytes}, or an empty list when there is no such artifact.
local ctype = redis.call('HGET', artifacts_key(ARGV[1]), ARGV[2])
if not ctype then return {} end
local data = redis.call('GET', artifact_key(ARGV[1], ARGV[2]))
if not data then return {} end
return {ctype, data}
