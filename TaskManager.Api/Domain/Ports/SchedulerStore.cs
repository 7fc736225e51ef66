namespace TaskManager.Api.Domain;

/// <summary>The scheduler's side: sweeps that enforce deadlines, leases and retention, and retries.</summary>
public interface ISchedulerStore
{
    /// <summary>Ends attempts past their deadline; returns each task handled.</summary>
    Task<IReadOnlyList<SweptTask>> SweepDeadlinesAsync(int batch);

    /// <summary>Expires the tasks still waiting past their start deadline; returns each task expired.</summary>
    Task<IReadOnlyList<SweptTask>> SweepStartDeadlinesAsync(int batch);

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

    /// <summary>Queues a scheduled task again after <paramref name="attempt"/>; false when it no longer waits for that retry.</summary>
    Task<bool> RequeueAsync(string taskId, int attempt);
}

/// <summary>A task a sweep moved: its new status, type and trace.</summary>
public sealed record SweptTask(string TaskId, string Status, string Type, string? TraceParent);

/// <summary>Work for the scheduler's Hangfire client: schedule a retry, or delete one.</summary>
public sealed record OutboxEntry(bool Delete, string TaskId, int Attempt, DateTimeOffset Due);
