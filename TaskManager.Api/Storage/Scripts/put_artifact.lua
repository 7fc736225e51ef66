-- Stores a binary output (an image, audio) of the current attempt beside the task.
-- KEYS: none; touches task:{id}, artifacts:{id}, artifact:{id}:{name}.
-- ARGV[1] task id   ARGV[2] lease token   ARGV[3] name   ARGV[4] content type   ARGV[5] bytes
-- ARGV[6] the most bytes a task's artifacts may take together
-- Returns: {'ok', status} | {'not_found'} | {'stale', status} | {'too_large', status}.
local id, name = ARGV[1], ARGV[3]
local tk = task_key(id)
local status, _, err = check_report(tk, ARGV[2])
if err then return err end
local previous = redis.call('STRLEN', artifact_key(id, name))
local total = tonumber(redis.call('HGET', tk, 'artifact_bytes') or '0') - previous + #ARGV[5]
if total > tonumber(ARGV[6]) then return {'too_large', status} end
redis.call('SET', artifact_key(id, name), ARGV[5])
redis.call('HSET', artifacts_key(id), name, ARGV[4])
redis.call('HSET', tk, 'artifact_bytes', total)
return {'ok', status}
