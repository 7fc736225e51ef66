-- Reads one task, with its attempt history. A queued task also gets its 1-based position in its
-- type's queue and, when no live worker could run it now, why (the waiting reason).
-- KEYS[1] task:{id}
-- ARGV[1] task id   ARGV[2] workers heard from since this time (ms) count as live
-- Also reads: attempts:{id}, queue:{type}, paused, workers, worker:{id}.
-- Returns REPLY.TASK_READ: task (the hash as a flat field/value list, with 'queue_position' and
--   'waiting_reason' added; empty when there is no task), attempts (JSON objects).
local id = ARGV[1]
local h = task_hash(id)
local f = {}
for i = 1, #h, 2 do f[h[i]] = h[i + 1] end

if f.status == 'queued' then
  local rank = call('ZRANK', queue_key(f.type), id)
  if rank then
    h[#h + 1] = 'queue_position'
    h[#h + 1] = tostring(rank + 1)
  end
  -- Why no live worker takes it. Bounded by the number of live workers, not of tasks.
  local serving, most_free, gpu_match, undrained = 0, -1, 0, 0
  for _, wid in ipairs(call('ZRANGEBYSCORE', WORKERS, ARGV[2], '+inf', 'LIMIT', 0, 10000)) do
    local w = read_fields(worker_key(wid), 'types', 'gpu_free_mb', 'gpu_names', 'draining')
    if w.types and string.find(',' .. w.types .. ',', ',' .. f.type .. ',', 1, true) then
      serving = serving + 1
      if w.draining ~= '1' then
        undrained = undrained + 1
        local free = tonumber(w.gpu_free_mb) or 0
        if not f.req_gpu or string.find(w.gpu_names or '', string.lower(f.req_gpu), 1, true) then
          gpu_match = gpu_match + 1
          if free > most_free then most_free = free end
        end
      end
    end
  end
  local reason
  if call('SISMEMBER', PAUSED, f.type) == 1 then
    reason = 'The ' .. f.type .. ' queue is paused.'
  elseif serving == 0 then
    reason = 'No live worker serves ' .. f.type .. ' tasks.'
  elseif undrained == 0 then
    reason = 'Every live worker that serves ' .. f.type .. ' tasks is draining.'
  elseif gpu_match == 0 then
    reason = 'No live worker has a GPU matching "' .. f.req_gpu .. '".'
  elseif f.req_mem and tonumber(f.req_mem) > most_free then
    reason = 'Needs ' .. f.req_mem .. ' MB of free GPU memory; the most any live worker has is ' .. most_free .. ' MB.'
  end
  if reason then
    h[#h + 1] = 'waiting_reason'
    h[#h + 1] = reason
  end
end
local attempts = call('LRANGE', attempts_key(id), 0, -1)
-- The attempt that succeeded is not stored (see append_attempt): it is the last, described by the hash.
if f.status == 'succeeded' then
  attempts[#attempts + 1] = attempt_entry(f.attempt, f.worker, f.started, f.completed, 'succeeded', '')
end
return REPLY.TASK_READ(h, attempts)
