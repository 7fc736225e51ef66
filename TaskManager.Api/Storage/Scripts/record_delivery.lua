-- Records one attempt of a webhook delivery, and the delivery's state after it (pending while it
-- will be tried again; delivered, failed, refused or gone once it is over).
-- KEYS[1] delivery:{id}
-- ARGV[1] the attempt as a JSON object   ARGV[2] the state after it
-- Returns: 1, or 0 when the delivery is gone (past its keeping).
local attempts = call('HGET', KEYS[1], 'attempts')
if not attempts then return 0 end
local list = cjson.decode(attempts)
list[#list + 1] = cjson.decode(ARGV[1])
call('HSET', KEYS[1], 'attempts', cjson.encode(list), 'state', ARGV[2])
return 1
