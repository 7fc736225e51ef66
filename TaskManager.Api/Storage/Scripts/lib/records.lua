-- Records: reading, creating and deleting tasks, their attempt history, and workers' model sets.

-- Reads fields of a hash into a table by name (a field the hash lacks reads false, as HMGET's nil
-- does in Lua). The hot paths read their fields with readers of their own (read_result and the
-- others below), whose table is built whole at once.
local function read_fields(key, ...)
  local names = {...}
  local values = call('HMGET', key, ...)
  local t = {}
  for i = 1, #names do t[names[i]] = values[i] end
  return t
end

-- A task's hash stores no tenant for the default one, DEFAULT_TENANT (see create_task): tenant_of
-- reads a stored value back.
local function tenant_of(stored) return stored or DEFAULT_TENANT end

-- Nor an 'attempt' while it is 0: attempt_of reads a stored value back, as a number.
local function attempt_of(stored) return tonumber(stored) or 0 end

-- Splits a comma list.
local function split(list)
  local items = {}
  for item in string.gmatch(list, '[^,]+') do items[#items + 1] = item end
  return items
end

-- The optional values of a new task, each stored under its own name, and only when given.
local OPTIONAL_TASK_VALUES = {'model', 'metadata', 'webhook', 'webhook_events', 'start_deadline', 'trace', 'req_mem', 'req_gpu'}

-- Stores a new task from ARGV, its values starting at `at` (see TASK_VALUE), with its queue entry
-- and its listing entry. The hash holds no field that another says already, so that a queued task
-- costs as little memory as it can: no 'id' (the key says it; task_hash puts it back), no
-- 'attempt' while it is 0, no 'tenant' for the default one, no 'queued_at' until a retry queues it
-- again (the lease reads 'created' instead), and no queue score (queue_score derives it from the
-- priority and 'created'). Returns its id, type and model ('' for none).
local function create_task(at, tenant, now)
  local id, ttype, priority = ARGV[at + TASK_VALUE.id], ARGV[at + TASK_VALUE.type], ARGV[at + TASK_VALUE.priority]
  local fields = {'type', ttype, 'status', 'queued', 'priority', priority, 'created', now,
    'input', ARGV[at + TASK_VALUE.input], 'timeout', ARGV[at + TASK_VALUE.timeout],
    'max_attempts', ARGV[at + TASK_VALUE.max_attempts]}
  if tenant ~= DEFAULT_TENANT then fields[#fields + 1] = 'tenant'; fields[#fields + 1] = tenant end
  for _, name in ipairs(OPTIONAL_TASK_VALUES) do
    local v = ARGV[at + TASK_VALUE[name]]
    if v ~= '' then fields[#fields + 1] = name; fields[#fields + 1] = v end
  end
  local deadline = ARGV[at + TASK_VALUE.start_deadline]
  if deadline ~= '' then
    local start_by = string.format('%.0f', tonumber(now) + tonumber(deadline) * 1000)
    fields[#fields + 1] = 'start_by'; fields[#fields + 1] = start_by
    later('ZADD', START_DEADLINES, start_by, id)
  end
  call('HSET', task_key(id), unpack(fields))
  later('ZADD', queue_key(ttype), queue_score(priority, now), id)
  later('ZADD', index_key(tenant, 'queued', ttype), 0, id)
  return id, ttype, ARGV[at + TASK_VALUE.model]
end

-- A task's hash as a flat field/value list, with its id (the hash does not store it), or an empty
-- list when there is no such task.
local function task_hash(id)
  local h = call('HGETALL', task_key(id))
  if #h > 0 then h[#h + 1] = 'id'; h[#h + 1] = id end
  return h
end

-- The number of tasks a tenant has queued, over all types (the tenant queue cap counts these).
local function queued_count(tenant)
  local queued = 0
  for _, t in ipairs(TASK_TYPES) do queued = queued + call('ZCARD', index_key(tenant, 'queued', t)) end
  return queued
end

-- One attempt of a task's history, as JSON: its number, worker, start and end (ms), outcome and
-- error (a JSON object, or '' for none).
local function attempt_entry(attempt, worker, started, ended, outcome, error_json)
  return '{"attempt":' .. attempt_of(attempt) ..
    ',"worker_id":' .. (worker and cjson.encode(worker) or 'null') ..
    ',"started_at":' .. (started or 'null') ..
    ',"ended_at":' .. (ended or 'null') ..
    ',"outcome":' .. cjson.encode(outcome) ..
    ',"error":' .. (error_json ~= '' and error_json or 'null') .. '}'
end

-- Appends an ended attempt that did not succeed to the task's history (attempts:{id}); `t` holds
-- the task's attempt, worker and started. outcome: failed, timeout, lease_expired, canceled,
-- handed_back. (The attempt that succeeded is not stored: it is the task's last, described by its
-- hash; get.lua puts it in.)
local function append_attempt(id, t, now, outcome, error_json)
  call('RPUSH', attempts_key(id), attempt_entry(t.attempt, t.worker, t.started, now, outcome, error_json))
end

-- Deletes a task with everything kept beside it: history, events, artifacts, listing entry,
-- retention entry.
local function delete_task(id, status, ttype, tenant)
  local tk = task_key(id)
  if status then call('ZREM', index_key(tenant_of(tenant), status, ttype), id) end
  for _, name in ipairs(call('HKEYS', artifacts_key(id))) do
    call('DEL', artifact_key(id, name))
  end
  for _, key in ipairs({tk, attempts_key(id), events_key(id), artifacts_key(id)}) do call('DEL', key) end
  call('ZREM', FINISHED, id)
end

-- Keeps the model:{name} sets in step with the models a worker reports loaded (comma lists).
local function set_worker_models(worker, old_csv, new_csv)
  local new = {}
  for _, m in ipairs(split(new_csv)) do new[m] = true; call('SADD', model_key(m), worker) end
  for _, m in ipairs(split(old_csv or '')) do
    if not new[m] then call('SREM', model_key(m), worker) end
  end
end
