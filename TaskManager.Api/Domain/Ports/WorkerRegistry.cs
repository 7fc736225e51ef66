namespace TaskManager.Api.Domain;

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

public sealed record WorkerRegistration(string Name, IReadOnlyList<string> TaskTypes, string CapabilitiesJson, int Capacity = 1, WorkerState? State = null);

/// <summary>What a worker reports of itself: its GPUs and loaded models (as JSON too, for display).</summary>
public sealed record WorkerState(string Json, long GpuFreeMb, IReadOnlyList<string> GpuNames, IReadOnlyList<string> Models);

public sealed record HeartbeatResult(IReadOnlyList<string> Stop, bool Drain, bool Idle = false);

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
