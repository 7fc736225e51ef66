-- Events: a task's status changes, progress, output chunks and log lines, in order, in its event
-- list (evlist:{id}) as 'kind|attempt|data', kind one of status, progress, chunk and log, data a
-- JSON object; an event's id is its place in the list (1, 2, ...). Three events are not stored,
-- each implied by the task's hash, so that the happy path writes none (the reader puts them in:
-- RedisTaskInspector.ReadEventsAsync):
-- - event 0, the submission's 'queued': every task starts queued;
-- - an attempt's 'running', until another event of that attempt is stored: the lease sets the
--   task's 'rp' (running pending) instead, and the first event stored after it stores the
--   'running' first, at the place the reader showed it;
-- - 'succeeded': nothing follows it, so the reader puts it last.
-- A task's 'w' field says someone follows it (set by the event stream before it reads); only then
-- is there a publish on ev:{id}, which wakes its followers on any API replica. Past MAX_EVENTS
-- only status events are kept, so that the end is never lost.

local MAX_EVENTS = 100000
local event_state, woken, woken_order, webhook_marked

local function clear_event_state() event_state, woken, woken_order, webhook_marked = {}, {}, {}, {} end

-- What emit needs of a task (its current attempt, rp and w), read once per call; a caller that
-- has read them passes them (a table with attempt, rp and w).
local function event_state_of(id, t)
  local st = event_state[id]
  if not st then
    t = t or read_fields(task_key(id), 'attempt', 'rp', 'w', 'webhook_events')
    st = {attempt = attempt_of(t.attempt), rp = t.rp, w = t.w, wh = t.webhook_events}
    event_state[id] = st
  end
  return st
end

-- Wakes a task's followers, if it has any: once per call, however many of its events the call
-- stores (flush_wakes, when the script ends), since a follower that wakes reads everything new.
-- (`n`, the latest event's id, is for a reader's logs.)
local function wake_followers(id, st, n)
  if st.w then
    if not woken[id] then woken_order[#woken_order + 1] = id end
    woken[id] = n or woken[id] or 0
  end
end

-- Publishes the wake-ups of the call, one per task woken (see `run` in LuaLibrary.cs).
local function flush_wakes()
  for _, id in ipairs(woken_order) do redis.call('PUBLISH', event_channel(id), woken[id]) end
end

-- Webhooks: a task whose webhook filter (`events`, its 'webhook_events', a comma list) takes
-- `event` (start, output, logs, completed) gets the flag 'wh_{event}' and a place in
-- webhooks_due, where the scheduler finds it and makes the deliveries (take_webhooks.lua), once
-- per call however many chunks or lines it stores. A task without a webhook costs nothing here.
local function webhook_event(id, events, event)
  local marked = id .. '|' .. event
  if events and not webhook_marked[marked] and string.find(',' .. events .. ',', ',' .. event .. ',', 1, true) then
    webhook_marked[marked] = true
    call('HSET', task_key(id), 'wh_' .. event, '1')
    later('ZADD', WEBHOOKS_DUE, 0, id)
  end
end

local WEBHOOK_EVENT_OF = {chunk = 'output', log = 'logs'}

-- Stores an event of the task's current attempt and wakes its followers.
local function emit(id, kind, data)
  local key = events_key(id)
  local st = event_state_of(id)
  local n
  if st.rp == '1' then
    n = call('RPUSH', key, 'status|' .. st.attempt .. '|{"status":"running"}', kind .. '|' .. st.attempt .. '|' .. data)
    call('HSET', task_key(id), 'rp', '0')
    st.rp = '0'
  else
    n = call('RPUSH', key, kind .. '|' .. st.attempt .. '|' .. data)
  end
  if st.wh and WEBHOOK_EVENT_OF[kind] then webhook_event(id, st.wh, WEBHOOK_EVENT_OF[kind]) end
  if n > MAX_EVENTS and kind ~= 'status' then
    call('RPOP', key)
    return
  end
  wake_followers(id, st, n)
end

-- A status change as an event: stored, but for 'succeeded', which only wakes the followers.
local function emit_status(id, status)
  -- A final status (one the state machine lets go nowhere) completes the task.
  local st = event_state_of(id)
  if st.wh and next(TRANSITIONS[status]) == nil then webhook_event(id, st.wh, 'completed') end
  if status == 'succeeded' then
    wake_followers(id, event_state_of(id))
  else
    emit(id, 'status', '{"status":"' .. status .. '"}')
  end
end

-- A running attempt's output chunks (numbered per attempt, so that a client can tell a gap or a
-- repeat at a glance) and log lines as events.
local function emit_output(id, tk, chunks, lines)
  for _, text in ipairs(chunks) do
    local index = call('HINCRBY', tk, 'chunks', 1)
    emit(id, 'chunk', '{"index":' .. index .. ',"text":' .. cjson.encode(text) .. '}')
  end
  for _, line in ipairs(lines) do
    emit(id, 'log', '{"line":' .. cjson.encode(line) .. '}')
  end
end
