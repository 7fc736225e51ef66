-- Records a webhook delivery about to be made: pending, with no attempt yet. It keeps the body it
-- was made with, so that every attempt sends the same message under the same webhook-id.
-- KEYS[1] delivery:{id}   KEYS[2] deliveries:{task id}
-- ARGV[1] delivery id   ARGV[2] task id   ARGV[3] event   ARGV[4] tenant   ARGV[5] target URL
-- ARGV[6] body   ARGV[7] the task's trace parent ('' none)   ARGV[8] now (ms)   ARGV[9] how long to keep it (s)
-- Returns: 1.
call('HSET', KEYS[1], 'task', ARGV[2], 'event', ARGV[3], 'tenant', ARGV[4], 'target', ARGV[5], 'body', ARGV[6],
  'trace', ARGV[7], 'created', ARGV[8], 'state', 'pending', 'attempts', '[]')
call('EXPIRE', KEYS[1], tonumber(ARGV[9]))
call('RPUSH', KEYS[2], ARGV[1])
call('EXPIRE', KEYS[2], tonumber(ARGV[9]))
return 1
