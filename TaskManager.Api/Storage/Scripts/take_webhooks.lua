-- Takes the tasks whose webhook events are due, and answers the deliveries to make now, in the
-- order to make them: for each task start, output, logs, completed, each whose flag is set
-- (webhook_event in lib/events.lua), clearing it. output and logs go at most once per `gap`
-- each: a flag raised sooner waits, and the task is due again when its gap is over; completed
-- waits for them, so that it is always the last. A task taken here is taken by one scheduler
-- replica alone.
-- KEYS[1] webhooks_due
-- ARGV[1] now (ms)   ARGV[2] batch size   ARGV[3] the gap (ms)
-- Also touches: task:{id}.
-- Returns: a REPLY.WEBHOOK_DUE for each delivery to make.
local now, gap = tonumber(ARGV[1]), tonumber(ARGV[3])
local ORDER = {'start', 'output', 'logs', 'completed'}
local SPACED = {output = true, logs = true}
local out = {}
for _, id in ipairs(call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  call('ZREM', KEYS[1], id)
  local tk = task_key(id)
  local f = read_fields(tk, 'webhook', 'tenant', 'trace', 'wh_job', 'wh_start', 'wh_output', 'wh_logs', 'wh_completed',
    'wh_output_at', 'wh_logs_at')
  if f.webhook then
    local again
    for _, event in ipairs(ORDER) do
      if f['wh_' .. event] then
        local ready = true
        if SPACED[event] then
          local last = tonumber(f['wh_' .. event .. '_at'])
          if last and now - last < gap then
            ready = false
            again = math.min(again or math.huge, last + gap)
          end
        elseif event == 'completed' and again then
          ready = false
        end
        if ready then
          call('HDEL', tk, 'wh_' .. event)
          if SPACED[event] then call('HSET', tk, 'wh_' .. event .. '_at', now) end
          out[#out + 1] = REPLY.WEBHOOK_DUE(id, event, tenant_of(f.tenant), f.webhook, f.trace, f.wh_job)
        end
      end
    end
    if again then call('ZADD', KEYS[1], again, id) end
  end
end
return out
