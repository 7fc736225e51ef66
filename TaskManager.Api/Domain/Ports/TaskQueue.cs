namespace TaskManager.Api.Domain;

/// <summary>State changes of tasks: the hot path (submit, lease, complete) and the rest.</summary>
public interface ITaskQueue
{
    /// <summary>
    /// Stores and queues a task for a tenant; when this returns Created, the task is in the store.
    /// With an idempotency key, a repeat returns the first task (Existing) and another request
    /// under the key is refused (Mismatch); a tenant at its queue cap is refused (QueueFull). With
    /// <paramref name="handTo"/>, a lease waiting on this replica, the new task is leased to that
    /// worker in the same round trip when the worker may take it (the answer is in
    /// <see cref="SubmitResult.Handed"/>), and no other lease is woken for it.
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
    /// Completes many tasks in one round trip, in order; with <paramref name="leaseFor"/>, the same
    /// call then leases up to <paramref name="maxTasks"/> tasks for that worker (never waiting).
    /// </summary>
    Task<(IReadOnlyList<StoreOutcome> Outcomes, LeaseResult? Lease)> CompleteManyAsync(
        IReadOnlyList<CompletedTask> results, string? leaseFor = null, int maxTasks = 0);

    Task<StoreOutcome> FailAsync(string taskId, string leaseToken, string errorJson, bool retryable, FailureKind kind);

    /// <summary>Records progress, output chunks and log lines as the task's events.</summary>
    Task<StoreOutcome> ReportProgressAsync(string taskId, string leaseToken, double? progress, string? message,
        IReadOnlyList<string>? chunks = null, IReadOnlyList<string>? logs = null);

    /// <summary>
    /// Records many progress reports in one round trip, in order (a worker that streams many tasks
    /// at once): each as <see cref="ReportProgressAsync"/> would, with an outcome per report.
    /// </summary>
    Task<IReadOnlyList<StoreOutcome>> ReportProgressManyAsync(IReadOnlyList<ProgressReport> reports);

    /// <summary>Stores a binary output of the current attempt; Conflict when the task's artifacts would pass the output limit.</summary>
    Task<StoreOutcome> PutArtifactAsync(string taskId, string leaseToken, string name, string contentType, byte[] data);

    /// <summary>Cancels a task of <paramref name="tenant"/> (<see cref="Tenants.All"/>: any); another tenant's is NotFound.</summary>
    Task<StoreOutcome> CancelAsync(string taskId, string tenant = Tenants.All);

    Task<StoreOutcome> DeleteAsync(string taskId, string tenant = Tenants.All);

    /// <summary>
    /// Runs an ended task of <paramref name="tenant"/> again (from <see cref="TaskState.Retryable"/>):
    /// queued, with a fresh attempt budget and its history kept. Conflict from any other state.
    /// </summary>
    Task<StoreOutcome> RetryAsync(string taskId, string tenant = Tenants.All);
}

/// <summary>Pausing and resuming a task type's queue.</summary>
public interface IQueueControl
{
    /// <summary>Returns true when the state changed.</summary>
    Task<bool> SetPausedAsync(string type, bool paused);

    /// <summary>Runs again every ended task that matches <paramref name="filter"/>; returns how many.</summary>
    Task<long> RetryEndedAsync(RetryFilter filter);
}

/// <summary>
/// Which ended tasks an admin runs again: those in one of <paramref name="Statuses"/> (each of
/// <see cref="TaskState.Retryable"/>) and of <paramref name="Types"/>, of <paramref name="Tenants"/>
/// (null: any), that ended at or after <paramref name="Since"/>.
/// </summary>
public sealed record RetryFilter(IReadOnlyList<string> Statuses, IReadOnlyList<string> Types, IReadOnlyList<string>? Tenants, DateTimeOffset Since);

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

/// <summary>One successful result of a batch: the task, the attempt's lease token, the output JSON,
/// and the attempt's last output chunks and log lines, if any.</summary>
public sealed record CompletedTask(string TaskId, string LeaseToken, string OutputJson,
    IReadOnlyList<string>? Chunks = null, IReadOnlyList<string>? Logs = null);

/// <summary>One progress report of a batch: the task, the attempt's lease token, the progress (0..1)
/// and message, if any, and output chunks and log lines.</summary>
public sealed record ProgressReport(string TaskId, string LeaseToken, double? Progress = null, string? Message = null,
    IReadOnlyList<string>? Chunks = null, IReadOnlyList<string>? Logs = null);

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
