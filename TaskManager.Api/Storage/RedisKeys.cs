using System.Text;

namespace TaskManager.Api.Storage;

/// <summary>
/// Every Redis key and channel TaskManager uses, each declared once here as a template. C# builds
/// keys from them, and the Lua scripts get the same templates as constants and functions
/// (<see cref="LuaDefinitions"/>), so the two cannot drift apart.
/// </summary>
/// <remarks>
/// Every key starts with the deployment's prefix, whose braces are a Redis Cluster hash tag: all
/// of one deployment's keys live in one slot, so a script may touch any of them on the node that
/// owns it. The layout is described in docs/architecture.md ("Storage layout").
/// </remarks>
public sealed class RedisKeys(string prefix)
{
    // Templates: literal text with {holes}; a hole's name is the Lua function's parameter.
    internal static readonly KeyTemplate TaskT = new("task_key", "task:{id}");
    internal static readonly KeyTemplate QueueT = new("queue_key", "queue:{ttype}");
    internal static readonly KeyTemplate IndexT = new("index_key", "idx:{tenant}:{status}:{ttype}");
    internal static readonly KeyTemplate IdempotencyT = new("idem_key", "idem:{tenant}:{key}");
    internal static readonly KeyTemplate LeasesT = new("LEASES", "leases");
    internal static readonly KeyTemplate DeadlinesT = new("DEADLINES", "deadlines");
    internal static readonly KeyTemplate ScheduledT = new("SCHEDULED", "scheduled");
    internal static readonly KeyTemplate StartDeadlinesT = new("START_DEADLINES", "start_deadlines");
    internal static readonly KeyTemplate WebhooksDueT = new("WEBHOOKS_DUE", "webhooks_due");
    internal static readonly KeyTemplate DeliveryT = new("delivery_key", "delivery:{id}");
    internal static readonly KeyTemplate DeliveriesT = new("deliveries_key", "deliveries:{id}");
    internal static readonly KeyTemplate RedeliverT = new("REDELIVER", "redeliver");
    internal static readonly KeyTemplate FinishedT = new("FINISHED", "finished");
    internal static readonly KeyTemplate AttemptsT = new("attempts_key", "attempts:{id}");
    internal static readonly KeyTemplate OutboxT = new("OUTBOX", "outbox");
    internal static readonly KeyTemplate EventsT = new("events_key", "evlist:{id}");
    internal static readonly KeyTemplate ArtifactsT = new("artifacts_key", "artifacts:{id}");
    internal static readonly KeyTemplate ArtifactT = new("artifact_key", "artifact:{id}:{name}");
    internal static readonly KeyTemplate ModelWorkersT = new("model_key", "model:{model}");
    internal static readonly KeyTemplate PausedT = new("PAUSED", "paused");
    internal static readonly KeyTemplate WorkerT = new("worker_key", "worker:{id}");
    internal static readonly KeyTemplate WorkersT = new("WORKERS", "workers");
    internal static readonly KeyTemplate StatsTotalsT = new("STATS_TOTALS", "stats:totals");
    internal static readonly KeyTemplate StatsMinuteT = new("stats_minute_key", "stats:min:{minute}");
    internal static readonly KeyTemplate HistogramT = new("histogram_key", "stats:{kind}:{ttype}");
    internal static readonly KeyTemplate NotifyChannelT = new("NOTIFY", "notify");
    internal static readonly KeyTemplate CancelChannelT = new("CANCELS", "cancels");
    internal static readonly KeyTemplate EventChannelT = new("event_channel", "ev:{id}");
    internal static readonly KeyTemplate WebhookSecretT = new("webhook_secret_key", "whsecret:{tenant}");

    private static readonly KeyTemplate[] All =
    [
        TaskT, QueueT, IndexT, IdempotencyT, LeasesT, DeadlinesT, ScheduledT, StartDeadlinesT, WebhooksDueT, DeliveryT, DeliveriesT,
        RedeliverT, FinishedT, AttemptsT, OutboxT, EventsT,
        ArtifactsT, ArtifactT, ModelWorkersT, PausedT, WorkerT, WorkersT, StatsTotalsT, StatsMinuteT, HistogramT,
        NotifyChannelT, CancelChannelT, EventChannelT, WebhookSecretT,
    ];

    // Keys that take no value, or only a task type, are built once (submit and lease name them).
    private readonly Dictionary<string, string> fixedKeys = All.Where(t => t.HoleCount == 0)
        .ToDictionary(t => t.LuaName, t => t.Build(prefix), StringComparer.Ordinal);
    private readonly Dictionary<string, string> queueKeys = Domain.TaskTypes.All
        .ToDictionary(t => t, t => QueueT.Build(prefix, t), StringComparer.Ordinal);

    public string Prefix { get; } = prefix;

    /// <summary><c>task:{id}</c> hash: one task (its fields: docs/architecture.md).</summary>
    public string Task(string id) => TaskT.Build(Prefix, id);

    /// <summary><c>queue:{type}</c> sorted set: queued task ids by priority, then age (lowest first).</summary>
    public string Queue(string type) => queueKeys.TryGetValue(type, out var key) ? key : QueueT.Build(Prefix, type);

    /// <summary><c>idx:{tenant}:{status}:{type}</c> sorted set, scores 0: a tenant's task ids by status and type, ordered by id (creation).</summary>
    public string Index(string tenant, string status, string type) => IndexT.Build(Prefix, tenant, status, type);

    /// <summary><c>idem:{tenant}:{key}</c> string: <c>task id|request hash</c> of an Idempotency-Key.</summary>
    public string Idempotency(string tenant, string key) => IdempotencyT.Build(Prefix, tenant, key);

    /// <summary>Running task ids by lease expiry (ms).</summary>
    public string Leases => fixedKeys[LeasesT.LuaName];

    /// <summary>Running task ids by attempt deadline (ms).</summary>
    public string Deadlines => fixedKeys[DeadlinesT.LuaName];

    /// <summary>Task ids waiting for a retry, by due time (ms).</summary>
    public string Scheduled => fixedKeys[ScheduledT.LuaName];

    /// <summary>Ids of tasks with a start deadline, by that deadline (ms): those still queued or scheduled then expire.</summary>
    public string StartDeadlines => fixedKeys[StartDeadlinesT.LuaName];

    /// <summary>Ids of tasks with webhook events to deliver, by when to look at them (ms; 0: at once).</summary>
    public string WebhooksDue => fixedKeys[WebhooksDueT.LuaName];

    /// <summary><c>delivery:{id}</c> hash: one webhook delivery (its task, event, target, body, state, job, attempts as JSON lines).</summary>
    public string Delivery(string id) => DeliveryT.Build(Prefix, id);

    /// <summary><c>deliveries:{task id}</c> list: a task's webhook delivery ids, oldest first.</summary>
    public string Deliveries(string taskId) => DeliveriesT.Build(Prefix, taskId);

    /// <summary>Deliveries a client asked to send again (their ids), for the scheduler.</summary>
    public string Redeliver => fixedKeys[RedeliverT.LuaName];

    /// <summary>Final task ids by completion time (ms), for retention.</summary>
    public string Finished => fixedKeys[FinishedT.LuaName];

    /// <summary>One JSON object per ended attempt of a task, but the one that succeeded (the task's hash describes it).</summary>
    public string Attempts(string id) => AttemptsT.Build(Prefix, id);

    /// <summary>Work for the scheduler's Hangfire client: <c>schedule|id|attempt|due</c>, <c>delete|id</c>.</summary>
    public string Outbox => fixedKeys[OutboxT.LuaName];

    /// <summary>A task's stored events, <c>kind|attempt|data</c>; an event's place is its id.</summary>
    public string Events(string id) => EventsT.Build(Prefix, id);

    public string Artifacts(string id) => ArtifactsT.Build(Prefix, id);

    public string Artifact(string id, string name) => ArtifactT.Build(Prefix, id, name);

    /// <summary>The workers that have a model loaded.</summary>
    public string ModelWorkers(string model) => ModelWorkersT.Build(Prefix, model);

    public string Paused => fixedKeys[PausedT.LuaName];

    public string Worker(string id) => WorkerT.Build(Prefix, id);

    /// <summary>Worker ids by last heartbeat (ms).</summary>
    public string Workers => fixedKeys[WorkersT.LuaName];

    /// <summary>All-time counts: <c>{type}:{status}</c> and <c>{type}:submitted</c>.</summary>
    public string StatsTotals => fixedKeys[StatsTotalsT.LuaName];

    /// <summary>Pub/sub: a task type (<c>type|model</c>), published when work of that type is queued.</summary>
    public string NotifyChannel => fixedKeys[NotifyChannelT.LuaName];

    /// <summary>Pub/sub: a worker id, published when one of its tasks must stop or it has news.</summary>
    public string CancelChannel => fixedKeys[CancelChannelT.LuaName];

    /// <summary>Pub/sub: published with each event of a task that someone follows.</summary>
    public string EventChannel(string id) => EventChannelT.Build(Prefix, id);

    /// <summary><c>whsecret:{tenant}</c> hash: a tenant's webhook signing secrets (<c>current</c>, <c>previous</c>).</summary>
    public string WebhookSecret(string tenant) => WebhookSecretT.Build(Prefix, tenant);

    /// <summary>Every template as Lua: a constant for a fixed key, a function of the holes for the others.</summary>
    public string LuaDefinitions()
    {
        var lua = new StringBuilder("local PREFIX = ").Append(Lua.Quote(Prefix)).Append('\n');
        foreach (var template in All)
        {
            template.AppendLua(lua);
        }
        return lua.ToString();
    }
}

/// <summary>
/// One key family: text after the prefix with named holes, like <c>idx:{tenant}:{status}:{ttype}</c>,
/// and the Lua name it goes by (upper case for a fixed key, else a function of the holes).
/// </summary>
internal sealed class KeyTemplate
{
    private readonly string[] literals; // literal text before each hole, then after the last
    private readonly string[] holes;

    public KeyTemplate(string luaName, string template)
    {
        LuaName = luaName;
        var parts = template.Split('{', '}');
        literals = parts.Where((_, i) => i % 2 == 0).ToArray();
        holes = parts.Where((_, i) => i % 2 == 1).ToArray();
    }

    public string LuaName { get; }

    public int HoleCount => holes.Length;

    public string Build(string prefix)
    {
        Expect(0);
        return string.Concat(prefix, literals[0]);
    }

    public string Build(string prefix, string a)
    {
        Expect(1);
        return string.Concat(prefix, literals[0], a, literals[1]);
    }

    public string Build(string prefix, string a, string b)
    {
        Expect(2);
        return string.Concat(string.Concat(prefix, literals[0], a, literals[1]), b, literals[2]);
    }

    public string Build(string prefix, string a, string b, string c)
    {
        Expect(3);
        return string.Concat(string.Concat(prefix, literals[0], a, literals[1]), string.Concat(b, literals[2], c, literals[3]));
    }

    private void Expect(int values)
    {
        if (holes.Length != values)
        {
            throw new ArgumentException($"The key {LuaName} takes {holes.Length} values, not {values}.");
        }
    }

    public void AppendLua(StringBuilder lua)
    {
        if (holes.Length == 0)
        {
            lua.Append("local ").Append(LuaName).Append(" = PREFIX .. ").Append(Lua.Quote(literals[0])).Append('\n');
            return;
        }
        lua.Append("local function ").Append(LuaName).Append('(').AppendJoin(", ", holes).Append(") return PREFIX");
        for (var i = 0; i < holes.Length; i++)
        {
            if (literals[i].Length > 0)
            {
                lua.Append(" .. ").Append(Lua.Quote(literals[i]));
            }
            lua.Append(" .. ").Append(holes[i]);
        }
        if (literals[^1].Length > 0)
        {
            lua.Append(" .. ").Append(Lua.Quote(literals[^1]));
        }
        lua.Append(" end\n");
    }
}
