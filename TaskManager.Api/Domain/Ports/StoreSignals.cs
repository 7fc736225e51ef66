namespace TaskManager.Api.Domain;

/// <summary>
/// Wake-ups that cross API replicas. The store raises them in the same call that moves a task,
/// and every replica's coordination hears them: work queued (for waiting leases), a worker's news
/// (for its held heartbeat), a followed task's new event (for its event streams).
/// </summary>
public interface ITaskSignals
{
    /// <summary>Calls <paramref name="handler"/> with the type (and model, if the task names one) of work queued.</summary>
    Task<IAsyncDisposable> OnWorkQueuedAsync(Action<string, string?> handler);

    /// <summary>Calls <paramref name="handler"/> with a worker id when one of its tasks must stop, it is drained, or it was given a task while its heartbeat is held.</summary>
    Task<IAsyncDisposable> OnWorkerSignalAsync(Action<string> handler);

    /// <summary>Calls <paramref name="handler"/> when the task, once followed (see <see cref="ITaskInspector.ReadEventsAsync"/>), has a new event.</summary>
    Task<IAsyncDisposable> OnTaskEventAsync(string taskId, Action handler);
}
