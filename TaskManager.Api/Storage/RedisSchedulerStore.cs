using System.Globalization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>The scheduler's sweeps and retries in Redis. Each sweep claims its tasks in one script call, so replicas never handle one twice.</summary>
public sealed class RedisSchedulerStore(RedisScripts scripts, IConnectionMultiplexer redis, RedisKeys keys, TimeProvider time,
    IOptions<TaskManagerOptions> options) : RedisStore(scripts, keys, time, options), ISchedulerStore
{
    public async Task<IReadOnlyList<SweptTask>> SweepDeadlinesAsync(int batch) =>
        Replies.ReadSwept(await Scripts.RunAsync(Script.SweepDeadlines, [Keys.Deadlines],
            [NowMs, batch, Options.Retry.DelaysMsList(Random.Shared)]).ConfigureAwait(false));

    public async Task<IReadOnlyList<SweptTask>> SweepStartDeadlinesAsync(int batch) =>
        Replies.ReadSwept(await Scripts.RunAsync(Script.SweepStartDeadlines, [Keys.StartDeadlines], [NowMs, batch]).ConfigureAwait(false));

    public async Task<IReadOnlyList<SweptTask>> SweepLeasesAsync(int batch) =>
        Replies.ReadSwept(await Scripts.RunAsync(Script.SweepLeases, [Keys.Leases], [NowMs, batch]).ConfigureAwait(false));

    public async Task<IReadOnlyList<string>> SweepOverdueRetriesAsync(int batch)
    {
        var now = NowMs;
        var cutoff = now - (Options.RetryGraceSeconds * 1000L);
        var result = await Scripts.RunAsync(Script.SweepScheduled, [Keys.Scheduled], [cutoff, batch, now]).ConfigureAwait(false);
        return ((RedisResult[])result!).Select(r => (string)r!).ToArray();
    }

    public async Task<int> SweepRetentionAsync(int batch)
    {
        var cutoff = NowMs - (long)TimeSpan.FromDays(Options.RetentionDays).TotalMilliseconds;
        return (int)await Scripts.RunAsync(Script.SweepRetention, [Keys.Finished], [cutoff, batch]).ConfigureAwait(false);
    }

    public async Task<int> SweepDeadWorkersAsync(int batch)
    {
        var cutoff = NowMs - (Options.DeadWorkerRetentionMinutes * 60_000L);
        return (int)await Scripts.RunAsync(Script.SweepWorkers, [Keys.Workers], [cutoff, batch]).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<OutboxEntry>> TakeOutboxAsync(int batch)
    {
        var entries = await redis.GetDatabase().ListLeftPopAsync(Keys.Outbox, batch).ConfigureAwait(false);
        if (entries is null)
        {
            return [];
        }
        // schedule|id|attempt|due or delete|id (schedule_retry and cancel.lua)
        return entries.Select(e => ((string)e!).Split('|')).Select(p => p[0] == "delete"
            ? new OutboxEntry(true, p[1], 0, default)
            : new OutboxEntry(false, p[1], int.Parse(p[2], CultureInfo.InvariantCulture),
                DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(p[3], CultureInfo.InvariantCulture)))).ToArray();
    }

    public async Task<bool> AttachRetryJobAsync(string taskId, int attempt, string jobId) =>
        (int)await Scripts.RunAsync(Script.AttachJob, [Keys.Task(taskId)], [attempt, jobId]).ConfigureAwait(false) == 1;

    public async Task<string?> GetRetryJobAsync(string taskId) =>
        await redis.GetDatabase().HashGetAsync(Keys.Task(taskId), "retry_job").ConfigureAwait(false);

    public async Task<bool> RequeueAsync(string taskId, int attempt) =>
        (int)await Scripts.RunAsync(Script.Requeue, [Keys.Task(taskId)], [taskId, attempt, NowMs]).ConfigureAwait(false) == 1;
}
