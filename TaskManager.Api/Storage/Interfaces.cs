using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>State changes of tasks: the hot path (submit, lease, complete) and the rest.</summary>
public interface ITaskQueue
{
    /// <summary>Stores and queues a task; when this returns, the task is in Redis.</summary>
    Task<TaskRecord> SubmitAsync(TaskRequest request, string? traceParent);

    /// <summary>Hands a worker up to <paramref name="maxTasks"/> tasks; never waits.</summary>
    Task<LeaseResult> LeaseAsync(string workerId, int maxTasks);

    Task<StoreOutcome> CompleteAsync(string taskId, string leaseToken, string outputJson);

    Task<StoreOutcome> FailAsync(string taskId, string leaseToken, string errorJson, bool retryable, FailureKind kind);

    Task<StoreOutcome> ReportProgressAsync(string taskId, string leaseToken, double? progress, string? message);

    Task<StoreOutcome> CancelAsync(string taskId);

    Task<StoreOutcome> DeleteAsync(string taskId);
}

/// <summary>Reads of tasks, apart from the writes.</summary>
public interface ITaskInspector
{
    Task<TaskRecord?> GetAsync(string taskId);

    Task<TaskPage> ListAsync(TaskQuery query);
}

/// <summary>Workers: registration and liveness.</summary>
public interface IWorkerRegistry
{
    Task<string> RegisterAsync(WorkerRegistration registration);

    /// <summary>Returns null for an unknown worker, else the ids of the tasks it must stop.</summary>
    Task<IReadOnlyList<string>?> HeartbeatAsync(string workerId, string stateJson, IReadOnlyList<(string TaskId, string LeaseToken)> running);
}

public enum FailureKind
{
    Error,
    Timeout,
    Canceled,
}

/// <summary>What a lease handed out. <see cref="UnknownWorker"/> when the worker must register again.</summary>
public sealed record LeaseResult(bool UnknownWorker, IReadOnlyList<string> WorkerTypes, bool MoreQueued, IReadOnlyList<LeasedTask> Tasks)
{
    public static readonly LeaseResult Unknown = new(true, [], false, []);
}

public sealed record TaskQuery(IReadOnlyList<string> Statuses, IReadOnlyList<string> Types, int Limit, string? Cursor);

public sealed record TaskPage(IReadOnlyList<TaskRecord> Items, string? NextCursor);

public sealed record WorkerRegistration(string Name, IReadOnlyList<string> TaskTypes, string CapabilitiesJson);
