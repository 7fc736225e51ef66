-- Stores a binary output (an image, audio) of the current attempt beside the task.
-- KEYS[1] task:{id}   KEYS[2] artifacts:{id}   KEYS[3] artifact:{id}:{name}
-- ARGV[1] lease token   ARGV[2] name   ARGV[3] content type   ARGV[4] bytes
-- ARGV[5] the most bytes a task's artifacts may take together
-- Returns REPLY.OUTCOME: 'ok', 'not_found', 'stale' or 'too_large', with the task's status.
local t = read_report(KEYS[1])
local refused = refuse_report(t, ARGV[1])
if refused then return refused end
local total = tonumber(t.artifact_bytes or '0') - call('STRLEN', KEYS[3]) + #ARGV[4]
if total > tonumber(ARGV[5]) then return REPLY.OUTCOME('too_large', t.status) end
call('SET', KEYS[3], ARGV[4])
call('HSET', KEYS[2], ARGV[2], ARGV[3])
call('HSET', KEYS[1], 'artifact_bytes', total)
return REPLY.OUTCOME('ok', t.status, t.type)
