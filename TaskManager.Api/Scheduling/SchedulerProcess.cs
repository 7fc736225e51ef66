using Hangfire;
using Hangfire.Server;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;
using TaskManager.Api.Observability;

namespace TaskManager.Api.Scheduling;

/// <summary>
/// The scheduler's loop, a Hangfire background process of each scheduler replica. About once a
/// second it enforces deadlines and leases, turns retries from the outbox into Hangfire jobs,
/// queues retries whose job was lost, and removes what is past retention. Each sweep claims its
/// tasks inside one Lua script, so replicas running side by side never handle a task twice.
/// </summary>
public sealed partial class SchedulerProcess(
    ISchedulerStore store,
    IBackgroundJobClient jobs,
    TaskTelemetry telemetry,
    TimeProvider time,
    IOptions<TaskManagerOptions> options,
    ILogger<SchedulerProcess> logger) : IBackgroundProcess
{
    private const int Batch = 200;
    private DateTimeOffset nextUpkeep = DateTimeOffset.MinValue;

    public void Execute(BackgroundProcessContext context)
    {
        // Hangfire calls Execute again when it returns, and restarts it after an exception (with a
        // delay), so one pass per call keeps a failed Redis call from stopping the loop.
        RunOnceAsync().GetAwaiter().GetResult();
        context.Wait(TimeSpan.FromMilliseconds(options.Value.SweepIntervalMs));
    }

    public async Task RunOnceAsync()
    {
        await DrainAsync(() => store.SweepDeadlinesAsync(Batch), moved => Swept("task.timeout", moved));
        await DrainAsync(() => store.SweepStartDeadlinesAsync(Batch), moved => Swept("task.expired", moved));
        await DrainAsync(() => store.SweepLeasesAsync(Batch), moved =>
        {
            telemetry.LeaseExpired(moved.Type);
            Swept("task.lease_expired", moved);
        });
        await DrainAsync(() => store.TakeOutboxAsync(Batch), ApplyAsync);
        await DrainAsync(() => store.SweepOverdueRetriesAsync(Batch), id => LogMoved(logger, "overdue retry", id, "queued"));

        // Retention and dead workers change slowly: once a minute is enough.
        if (time.GetUtcNow() >= nextUpkeep)
        {
            nextUpkeep = time.GetUtcNow().AddMinutes(1);
            while (await store.SweepRetentionAsync(Batch) == Batch)
            {
            }
            while (await store.SweepDeadWorkersAsync(Batch) == Batch)
            {
            }
        }
    }

    /// <summary>A task a sweep moved: logged, counted, and marked on its trace.</summary>
    private void Swept(string what, SweptTask moved)
    {
        LogMoved(logger, what, moved.TaskId, moved.Status);
        telemetry.Moved(moved.Type, moved.Status);
        var now = time.GetUtcNow();
        TaskTelemetry.RecordSpan(what, moved.TraceParent, now, now, ("task.id", moved.TaskId), ("task.status", moved.Status));
    }

    private async Task ApplyAsync(OutboxEntry entry)
    {
        if (entry.Delete)
        {
            if (await store.GetRetryJobAsync(entry.TaskId) is { } jobId)
            {
                jobs.Delete(jobId);
            }
            return;
        }
        var job = jobs.Schedule<RetryJob>(j => j.RunAsync(entry.TaskId, entry.Attempt), entry.Due);
        if (!await store.AttachRetryJobAsync(entry.TaskId, entry.Attempt, job))
        {
            // Canceled (or gone) before its retry job existed.
            jobs.Delete(job);
        }
    }

    private static async Task DrainAsync<T>(Func<Task<IReadOnlyList<T>>> take, Action<T> handle) =>
        await DrainAsync(take, item =>
        {
            handle(item);
            return Task.CompletedTask;
        });

    private static async Task DrainAsync<T>(Func<Task<IReadOnlyList<T>>> take, Func<T, Task> handle)
    {
        IReadOnlyList<T> items;
        do
        {
            items = await take();
            foreach (var item in items)
            {
                await handle(item);
            }
        }
        while (items.Count == Batch);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Reason}: task {TaskId} is now {Status}")]
    private static partial void LogMoved(ILogger logger, string reason, string taskId, string status);
}
