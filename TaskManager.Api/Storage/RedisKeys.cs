namespace TaskManager.Api.Storage;

/// <summary>
/// Every Redis key and channel TaskManager uses, built in this one class. The Lua scripts get the
/// same names through <see cref="LuaDefinitions"/>, so C# and Lua cannot drift apart.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>task:{id}</c> hash: one task. Besides its fields, <c>rp</c> (<c>1</c>: the current
/// attempt's <c>running</c> event is implied, not stored yet) and <c>w</c> (<c>1</c>: an event
/// stream follows it, so its events are published). It stores nothing another field or the key
/// says (see create_task in common.lua): no id, no <c>attempt</c> while it is 0, no <c>tenant</c>
/// for the default one, no <c>queued_at</c> until a retry queues it again, no queue score (the
/// scripts derive it from <c>priority</c> and <c>created</c>; tasks stored before kept it in
/// <c>qs</c>, which is still read).</item>
/// <item><c>queue:{type}</c> sorted set: queued task ids, scored by priority then age (lowest first).</item>
/// <item><c>idx:{tenant}:{status}:{type}</c> sorted set, all scores 0: a tenant's task ids by status
/// and type, ordered by id, which is a UUIDv7 and so sorts by creation time. Listing merges these;
/// a tenant's queued count (its cap) is the sum of its queued sets.</item>
/// <item><c>idem:{tenant}:{key}</c> string: <c>task id|request hash</c> of an Idempotency-Key, for 24 hours.</item>
/// <item><c>leases</c> sorted set: running task ids by lease expiry (ms).</item>
/// <item><c>deadlines</c> sorted set: running task ids by attempt deadline (ms).</item>
/// <item><c>scheduled</c> sorted set: task ids waiting for a retry, by due time (ms).</item>
/// <item><c>finished</c> sorted set: final task ids by completion time (ms), for retention.</item>
/// <item><c>attempts:{id}</c> list: one JSON object per ended attempt of a task, but for the one
/// that succeeded, which is read from the task's hash.</item>
/// <item><c>outbox</c> list: work for the scheduler's Hangfire client (<c>schedule|id|attempt|due</c>,
/// <c>delete|id</c>), so that request handlers never call Hangfire.</item>
/// <item><c>evlist:{id}</c> list: the task's status changes, progress, output chunks and log
/// lines, in order, as <c>kind|attempt|data</c>; an event's place (1, 2, ...) is its server-sent
/// event id. Event 0, the submission's <c>queued</c>, a pending <c>running</c> and <c>succeeded</c>
/// are implied by the task's hash, not stored (see emit in common.lua). (Before, a stream at
/// <c>events:{id}</c>, which Redis 7.0 gives 4 KB each; deletion still removes one left from then.)
/// <c>ev:{id}</c> pub/sub channel: published with each event of a followed task, to wake its
/// followers on any API replica.</item>
/// <item><c>artifacts:{id}</c> hash (name to content type) and <c>artifact:{id}:{name}</c> strings:
/// a task's binary outputs.</item>
/// <item><c>paused</c> set: task types whose queue is paused.</item>
/// <item><c>stats:totals</c> hash (<c>{type}:{status}</c> and <c>{type}:submitted</c> to counts),
/// <c>stats:min:{minute}</c> hashes (tasks finished in that minute, kept 20 minutes), and
/// <c>stats:wait:{type}</c> / <c>stats:run:{type}</c> hashes (histogram bucket index to count,
/// plus <c>count</c> and <c>sum</c> in ms): the statistics, kept up as tasks move.</item>
/// <item><c>worker:{id}</c> hash and <c>workers</c> sorted set (by last heartbeat, ms);
/// <c>model:{name}</c> set: the workers that have that model loaded.</item>
/// <item><c>notify</c> pub/sub channel: a task type, published when work of that type is queued.</item>
/// <item><c>cancels</c> pub/sub channel: a worker id, published when one of its tasks must stop.</item>
/// </list>
/// </remarks>
public sealed class RedisKeys(string prefix)
{
    public string Prefix { get; } = prefix;

    public string Task(string id) => $"{Prefix}task:{id}";

    public string Queue(string type) => $"{Prefix}queue:{type}";

    public string Index(string tenant, string status, string type) => $"{Prefix}idx:{tenant}:{status}:{type}";

    public string Idempotency(string tenant, string key) => $"{Prefix}idem:{tenant}:{key}";

    public string Leases => $"{Prefix}leases";

    public string Deadlines => $"{Prefix}deadlines";

    public string Scheduled => $"{Prefix}scheduled";

    public string Finished => $"{Prefix}finished";

    public string Attempts(string id) => $"{Prefix}attempts:{id}";

    public string Outbox => $"{Prefix}outbox";

    public string CancelChannel => $"{Prefix}cancels";

    public string Events(string id) => $"{Prefix}evlist:{id}";

    public string EventChannel(string id) => $"{Prefix}ev:{id}";

    public string Artifacts(string id) => $"{Prefix}artifacts:{id}";

    public string Artifact(string id, string name) => $"{Prefix}artifact:{id}:{name}";

    public string ModelWorkers(string model) => $"{Prefix}model:{model}";

    public string Paused => $"{Prefix}paused";

    public string Worker(string id) => $"{Prefix}worker:{id}";

    public string Workers => $"{Prefix}workers";

    public string NotifyChannel => $"{Prefix}notify";

    /// <summary>The same names as Lua functions and constants, prepended to every script.</summary>
    public string LuaDefinitions() => $$"""
        local PREFIX = '{{Prefix}}'
        local LEASES = '{{Leases}}'
        local DEADLINES = '{{Deadlines}}'
        local WORKERS = '{{Workers}}'
        local NOTIFY = '{{NotifyChannel}}'
        local SCHEDULED = '{{Scheduled}}'
        local FINISHED = '{{Finished}}'
        local OUTBOX = '{{Outbox}}'
        local CANCELS = '{{CancelChannel}}'
        local PAUSED = '{{Paused}}'
        local STATS_TOTALS = '{{Prefix}}stats:totals'
        local function stats_minute_key(minute) return PREFIX .. 'stats:min:' .. minute end
        local function histogram_key(kind, t) return PREFIX .. 'stats:' .. kind .. ':' .. t end
        local function task_key(id) return PREFIX .. 'task:' .. id end
        local function queue_key(t) return PREFIX .. 'queue:' .. t end
        local function index_key(tenant, s, t) return PREFIX .. 'idx:' .. tenant .. ':' .. s .. ':' .. t end
        local function idem_key(tenant, key) return PREFIX .. 'idem:' .. tenant .. ':' .. key end
        local function worker_key(id) return PREFIX .. 'worker:' .. id end
        local function attempts_key(id) return PREFIX .. 'attempts:' .. id end
        local function events_key(id) return PREFIX .. 'evlist:' .. id end
        local function old_events_key(id) return PREFIX .. 'events:' .. id end
        local function event_channel(id) return PREFIX .. 'ev:' .. id end
        local function artifacts_key(id) return PREFIX .. 'artifacts:' .. id end
        local function artifact_key(id, name) return PREFIX .. 'artifact:' .. id .. ':' .. name end
        local function model_key(m) return PREFIX .. 'model:' .. m end

        """;
}
