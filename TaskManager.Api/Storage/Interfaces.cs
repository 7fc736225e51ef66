using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>State changes of tasks: the hot path (submit, lease, complete) and the rest.</summary>
public interface ITaskQueue
{
    /// <summary>
    /// Stores and queues a task for a tenant; when this returns Created, the task is in Redis. With
    /// an idempotency key, a repeat returns the first task (Existing) and another request under the
    /// key is refused (Mismatch); a tenant at its queue cap is refused (QueueFull). With
    /// <paramref name="handTo"/>, a lease waiting on this replica, the new task is leased to that
    /// worker in the same round trip when the worker may take it (the answer is in
    /// <see cref="SubmitResult.Handed"/>), and is not published.
    /// </summary>
    Task<SubmitResult> SubmitAsync(TaskRequest request, string? traceParent, string tenant = Tenants.Default,
        string? idempotencyKey = null, string? requestHash = null, WaitingLease? handTo = null);

    /// <summary>
    /// Stores and queues many tasks in one round trip, in order; the tasks that would pass the
    /// tenant's queue cap are refused (QueueFull), the ones before them are created.
    /// </summary>
    Task<IReadOnlyList<SubmitResult>> SubmitBatchAsync(IReadOnlyList<TaskRequest> requests, string? traceParent,
        string tenant = Tenants.Default);

    /// <summary>Hands a worker up to <paramref name="maxTasks"/> tasks; never waits.</summary>
    Task<LeaseResult> LeaseAsync(string workerId, int maxTasks);

    Task<StoreOutcome> CompleteAsync(string taskId, string leaseToken, string outputJson);

    /// <summary>
    /// Completes many tasks in one script call, in order; with <paramref name="leaseFor"/>, the same
    /// call then leases up to <paramref name="maxTasks"/> tasks for that worker (never waiting).
    /// </summary>
    Task<(IReadOnlyList<StoreOutcome> Outcomes, LeaseResult? Lease)> CompleteManyAsync(
        IReadOnlyList<CompletedTask> results, string? leaseFor = null, int maxTasks = 0);

    Task<StoreOutcome> FailAsync(string taskId, string leaseToken, string errorJson, bool retryable, FailureKind kind);

    /// <summary>Records progress, output chunks and log lines as the task's events.</summary>
    Task<StoreOutcome> ReportProgressAsync(string taskId, string leaseToken, double? progress, string? message,
        IReadOnlyList<string>? chunks = null, IReadOnlyList<string>? logs = null);

    /// <summary>Stores a binary output of the current attempt; Conflict when the task's artifacts would pass the output limit.</summary>
    Task<StoreOutcome> PutArtifactAsync(string taskId, string leaseToken, string name, string contentType, byte[] data);

    /// <summary>Cancels a task of <paramref name="tenant"/> (<see cref="Tenants.All"/>: any); another tenant's is NotFound.</summary>
    Task<StoreOutcome> CancelAsync(string taskId, string tenant = Tenants.All);

    Task<StoreOutcome> DeleteAsync(string taskId, string tenant = Tenants.All);
}

/// <summary>Reads of tasks, apart from the writes.</summary>
public interface ITaskInspector
{
    Task<TaskRecord?> GetAsync(string taskId);

    Task<TaskPage> ListAsync(TaskQuery query);

    /// <summary>
    /// Events after <paramref name="afterId"/> (null: from the start), oldest first. A reader that
    /// <paramref name="follows"/> the task live (subscribed to its signal first) marks it followed,
    /// so that its next events are published.
    /// </summary>
    Task<IReadOnlyList<TaskEvent>> ReadEventsAsync(string taskId, string? afterId, int count, bool follows = false);

    Task<(string ContentType, byte[] Data)?> GetArtifactAsync(string taskId, string name);

    /// <summary>The statistics, at a cost that does not grow with the number of tasks; task counts cover <paramref name="tenants"/>.</summary>
    Task<StatsSnapshot> ReadStatsAsync(IReadOnlyList<string> tenants);
}

/// <summary>Pausing and resuming a task type's queue.</summary>
public interface IQueueControl
{
    /// <summary>Returns true when the state changed.</summary>
    Task<bool> SetPausedAsync(string type, bool paused);
}

/// <summary>A duration histogram: counts per bucket of <see cref="Domain.Histogram.BoundsMs"/> (plus the open last one), the count and the sum (ms).</summary>
public sealed record HistogramData(IReadOnlyList<long> Buckets, long Count, long SumMs);

/// <summary>
/// The statistics as stored: task counts (status, type, n) for the tenants asked, queue depths,
/// paused types, all-time totals (<c>{type}:{status}</c>, <c>{type}:submitted</c>), the finishes of
/// each of the last 15 minutes (newest first, the current one partial), and histograms by type.
/// </summary>
public sealed record StatsSnapshot(
    IReadOnlyList<(string Status, string Type, long Count)> Counts,
    IReadOnlyDictionary<string, long> QueueDepths,
    IReadOnlySet<string> Paused,
    IReadOnlyDictionary<string, long> Totals,
    IReadOnlyList<IReadOnlyDictionary<string, long>> Minutes,
    IReadOnlyDictionary<string, HistogramData> Wait,
    IReadOnlyDictionary<string, HistogramData> Run);

/// <summary>Workers: registration and liveness.</summary>
public interface IWorkerRegistry
{
    Task<string> RegisterAsync(WorkerRegistration registration);

    /// <summary>
    /// Returns null for an unknown worker, else the tasks it must stop, whether it is draining and
    /// whether its heartbeat may be held long (<paramref name="holdIfIdle"/> asked it, and the worker
    /// runs nothing and was given nothing).
    /// </summary>
    Task<HeartbeatResult?> HeartbeatAsync(string workerId, WorkerState state, IReadOnlyList<(string TaskId, string LeaseToken)> running,
        bool holdIfIdle = false);

    /// <summary>Keeps alive the workers whose idle heartbeats this replica holds: their last heartbeat becomes now.</summary>
    Task TouchWorkersAsync(IReadOnlyCollection<string> workerIds);

    /// <summary>Drains a worker; false when it is unknown.</summary>
    Task<bool> DrainAsync(string workerId);

    Task<IReadOnlyList<WorkerRecord>> ListWorkersAsync(int max);
}

/// <summary>The scheduler's side: sweeps that enforce deadlines, leases and retention, and retries.</summary>
public interface ISchedulerStore
{
    /// <summary>Ends attempts past their deadline; returns each task handled.</summary>
    Task<IReadOnlyList<SweptTask>> SweepDeadlinesAsync(int batch);

    /// <summary>Takes back the tasks of silent workers; returns each task handled.</summary>
    Task<IReadOnlyList<SweptTask>> SweepLeasesAsync(int batch);

    /// <summary>Queues retries overdue by more than the grace; returns their ids.</summary>
    Task<IReadOnlyList<string>> SweepOverdueRetriesAsync(int batch);

    Task<int> SweepRetentionAsync(int batch);

    Task<int> SweepDeadWorkersAsync(int batch);

    /// <summary>Takes up to <paramref name="batch"/> outbox entries (scheduled retries, deleted retries).</summary>
    Task<IReadOnlyList<OutboxEntry>> TakeOutboxAsync(int batch);

    /// <summary>Records the Hangfire job of a retry; false when the task no longer waits for it.</summary>
    Task<bool> AttachRetryJobAsync(string taskId, int attempt, string jobId);

    /// <summary>Gets a task's pending retry job id, if any.</summary>
    Task<string?> GetRetryJobAsync(string taskId);

    /// <summary>Queues a scheduled task again; false when it no longer waits for that retry.</summary>
    Task<bool> RequeueAsync(string taskId, int? attempt);
}

/// <summary>A task a sweep moved: its new status, type and trace.</summary>
public sealed record SweptTask(string TaskId, string Status, string Type, string? TraceParent);

/// <summary>Work for the scheduler's Hangfire client: schedule a retry, or delete one.</summary>
public sealed record OutboxEntry(bool Delete, string TaskId, int Attempt, DateTimeOffset Due);

public enum FailureKind
{
    Error,
    Timeout,
    Canceled,
    /// <summary>A worker shutting down gave the task back; it is queued again at once.</summary>
    HandedBack,
}

/// <summary>What a lease handed out. <see cref="UnknownWorker"/> when the worker must register again.</summary>
/// <param name="LeftForOthers">(type, model) of tasks this worker skipped because another idle
/// worker has their model loaded: the caller wakes that worker.</param>
public sealed record LeaseResult(
    bool UnknownWorker,
    IReadOnlyList<string> WorkerTypes,
    IReadOnlyList<string> WorkerModels,
    bool MoreQueued,
    IReadOnlyList<(string Type, string Model)> LeftForOthers,
    IReadOnlyList<LeasedTask> Tasks)
{
    public static readonly LeaseResult Unknown = new(true, [], [], false, [], []);
}

public sealed record HeartbeatResult(IReadOnlyList<string> Stop, bool Drain, bool Idle = false);

/// <summary>What a worker reports of itself: its GPUs and loaded models (as JSON too, for display).</summary>
public sealed record WorkerState(string Json, long GpuFreeMb, IReadOnlyList<string> GpuNames, IReadOnlyList<string> Models);

/// <summary>A worker as stored; <see cref="InfoJson"/> and <see cref="StateJson"/> are what it registered and last reported.</summary>
public sealed record WorkerRecord(
    string Id,
    string Name,
    IReadOnlyList<string> TaskTypes,
    string InfoJson,
    string? StateJson,
    int Capacity,
    int Running,
    long Completed,
    long Failed,
    bool Draining,
    DateTimeOffset RegisteredAt,
    DateTimeOffset LastSeen);

/// <summary>One event of a task's stream: its id (a Redis stream id), kind, attempt and JSON data.</summary>
/// <summary>One successful result of a batch: the task, the attempt's lease token, the output JSON,
/// and the attempt's last output chunks and log lines, if any.</summary>
public sealed record CompletedTask(string TaskId, string LeaseToken, string OutputJson,
    IReadOnlyList<string>? Chunks = null, IReadOnlyList<string>? Logs = null);

public sealed record TaskEvent(string Id, string Kind, int Attempt, string DataJson);

public sealed record TaskQuery(IReadOnlyList<string> Statuses, IReadOnlyList<string> Types, int Limit, string? Cursor,
    IReadOnlyList<string>? Tenants = null);

/// <summary>Tenant names the storage knows without the security layer.</summary>
public static class Tenants
{
    /// <summary>The tenant of tasks submitted without one (tests, and data from before tenants).</summary>
    public const string Default = "default";

    /// <summary>Any tenant: what an admin acts as.</summary>
    public const string All = "*";
}

public enum SubmitKind
{
    Created,
    Existing,
    Mismatch,
    Gone,
    QueueFull,
}

/// <summary>A lease waiting for work: its worker, and the most tasks it asked for.</summary>
public sealed record WaitingLease(string WorkerId, int MaxTasks);

/// <summary>
/// What a submission did; <see cref="Task"/> is set for Created and Existing. <see cref="Handed"/>:
/// the answer of the waiting lease the task was offered to (it may hold no task: the worker could
/// not take it); null when none was.
/// </summary>
public sealed record SubmitResult(SubmitKind Kind, TaskRecord? Task, long QueuedCount = 0, LeaseResult? Handed = null)
{
    public string Id => Task?.Id ?? throw new InvalidOperationException($"A {Kind} submission has no task.");
}

public sealed record TaskPage(IReadOnlyList<TaskRecord> Items, string? NextCursor);

public sealed record WorkerRegistration(string Name, IReadOnlyList<string> TaskTypes, string CapabilitiesJson, int Capacity = 1, WorkerState? State = null);
