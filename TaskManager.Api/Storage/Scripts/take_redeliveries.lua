-- Takes the deliveries clients asked to send again, for the scheduler.
-- KEYS[1] redeliver
-- ARGV[1] batch size
-- Returns: the delivery ids.
return call('LPOP', KEYS[1], tonumber(ARGV[1])) or {}
