using System.Globalization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>
/// The state changes of tasks in Redis. Each method is one script call, so one round trip; the
/// scripts are in <c>Storage/Scripts</c>.
/// </summary>
public sealed class RedisTaskQueue(RedisScripts scripts, RedisKeys keys, TimeProvider time, IOptions<TaskManagerOptions> options)
    : RedisStore(scripts, keys, time, options), ITaskQueue, IQueueControl
{
    public async Task<SubmitResult> SubmitAsync(TaskRequest request, string? traceParent, string tenant = Tenants.Default,
        string? idempotencyKey = null, string? requestHash = null, WaitingLease? handTo = null)
    {
        var now = Time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        // Time-ordered ids: the listing indexes and queue ties order by id.
        var id = TaskIds.New(now);
        var o = Options;
        RedisKey[] taskKeys = idempotencyKey is null
            ? [Keys.Task(id), Keys.Queue(request.Type)]
            : [Keys.Task(id), Keys.Queue(request.Type), Keys.Idempotency(tenant, idempotencyKey)];
        var values = new List<RedisValue>(5 + TaskValues.Count + (handTo is null ? 0 : 6))
        {
            nowMs, tenant, o.TenantQueueCap, requestHash ?? "", o.IdempotencyHours * 3600,
        };
        TaskValues.Add(values, id, request, traceParent);
        if (handTo is not null)
        {
            values.AddRange([handTo.WorkerId, handTo.MaxTasks, .. LeaseSettings(nowMs)]);
        }
        var r = Replies.Of<Replies.Submit>(await Scripts.RunAsync(Script.Submit, taskKeys, [.. values]).ConfigureAwait(false));
        return r.String(Replies.Submit.Code) switch
        {
            // The task as created, queued, even when a waiting lease took it in the same call: the
            // answer to a submission describes what it created, as it would without the hand-off.
            "created" => new SubmitResult(SubmitKind.Created, RedisRecords.NewTask(id, request, tenant, nowMs),
                Handed: Replies.ReadOptionalLease(r[Replies.Submit.Lease])),
            "existing" => new SubmitResult(SubmitKind.Existing, RedisRecords.Task(r.List(Replies.Submit.Task))),
            "mismatch" => new SubmitResult(SubmitKind.Mismatch, null),
            "gone" => new SubmitResult(SubmitKind.Gone, null),
            "queue_full" => new SubmitResult(SubmitKind.QueueFull, null, r.Long(Replies.Submit.Queued)),
            var other => throw new InvalidOperationException($"Unexpected submit reply '{other}'."),
        };
    }

    public async Task<IReadOnlyList<SubmitResult>> SubmitBatchAsync(IReadOnlyList<TaskRequest> requests, string? traceParent,
        string tenant = Tenants.Default)
    {
        if (requests.Count == 0)
        {
            return [];
        }
        var now = Time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        var cap = Options.TenantQueueCap;
        var values = new List<RedisValue>(3 + (requests.Count * TaskValues.Count)) { nowMs, tenant, cap };
        var ids = new string[requests.Count];
        for (var i = 0; i < requests.Count; i++)
        {
            ids[i] = TaskIds.New(now);
            TaskValues.Add(values, ids[i], requests[i], traceParent);
        }
        RedisKey[] queues = [.. requests.Select(r => r.Type).Distinct().Select(Keys.Queue)];
        var r = Replies.Of<Replies.SubmitBatch>(await Scripts.RunAsync(Script.SubmitBatch, queues, [.. values]).ConfigureAwait(false));
        var queued = r.Long(Replies.SubmitBatch.Queued);
        var created = r.List(Replies.SubmitBatch.Created);
        var results = new SubmitResult[requests.Count];
        for (var i = 0; i < requests.Count; i++)
        {
            results[i] = (long)created[i] == 1
                ? new SubmitResult(SubmitKind.Created, RedisRecords.NewTask(ids[i], requests[i], tenant, nowMs))
                : new SubmitResult(SubmitKind.QueueFull, null, Math.Max(queued, cap));
        }
        return results;
    }

    /// <summary>A lease's arguments after the worker and its most tasks: TTL (ms), token base, depth, live since (ms).</summary>
    private RedisValue[] LeaseSettings(long now)
    {
        var o = Options;
        return [o.LeaseTtlSeconds * 1000L, Guid.NewGuid().ToString("N"), o.LeaseScanDepth, now - (o.WorkerStaleSeconds * 1000L)];
    }

    public async Task<LeaseResult> LeaseAsync(string workerId, int maxTasks)
    {
        var now = NowMs;
        return Replies.ReadLease(await Scripts.RunAsync(Script.Lease, [Keys.Worker(workerId)],
            [workerId, now, maxTasks, .. LeaseSettings(now)]).ConfigureAwait(false));
    }

    public async Task<StoreOutcome> CompleteAsync(string taskId, string leaseToken, string outputJson) =>
        Replies.ReadOutcome(await Scripts.RunAsync(Script.Complete, [Keys.Task(taskId)], [taskId, leaseToken, NowMs, outputJson])
            .ConfigureAwait(false));

    public async Task<(IReadOnlyList<StoreOutcome> Outcomes, LeaseResult? Lease)> CompleteManyAsync(
        IReadOnlyList<CompletedTask> results, string? leaseFor = null, int maxTasks = 0)
    {
        var now = NowMs;
        var leasing = leaseFor is not null && maxTasks > 0;
        var taskKeys = new RedisKey[results.Count + 1];
        // A key leads that a call with no results names too.
        taskKeys[0] = leasing ? Keys.Worker(leaseFor!) : Keys.Workers;
        var values = new List<RedisValue>(7 + (results.Count * 5)) { now, leasing ? leaseFor : "" };
        if (leasing)
        {
            values.AddRange([maxTasks, .. LeaseSettings(now)]);
        }
        for (var i = 0; i < results.Count; i++)
        {
            var r = results[i];
            var (chunks, lines) = (r.Chunks ?? [], r.Logs ?? []);
            taskKeys[i + 1] = Keys.Task(r.TaskId);
            values.Add(r.TaskId);
            values.Add(r.LeaseToken);
            values.Add(r.OutputJson);
            values.Add(chunks.Count);
            values.Add(lines.Count);
            values.AddRange(chunks.Select(c => (RedisValue)c));
            values.AddRange(lines.Select(l => (RedisValue)l));
        }
        // The next lease is made by the same script, after the results: one script call.
        var reply = Replies.Of<Replies.CompleteBatch>(await Scripts.RunAsync(Script.CompleteBatch, taskKeys, [.. values]).ConfigureAwait(false));
        var outcomes = reply.List(Replies.CompleteBatch.Outcomes).Select(Replies.ReadOutcome).ToArray();
        return (outcomes, Replies.ReadOptionalLease(reply[Replies.CompleteBatch.Lease]));
    }

    public async Task<StoreOutcome> FailAsync(string taskId, string leaseToken, string errorJson, bool retryable, FailureKind kind) =>
        Replies.ReadOutcome(await Scripts.RunAsync(Script.Fail, [Keys.Task(taskId)],
            [taskId, leaseToken, NowMs, errorJson, retryable ? "1" : "0", KindName(kind), Options.Retry.DelaysMsList(Random.Shared)])
            .ConfigureAwait(false));

    public async Task<StoreOutcome> ReportProgressAsync(string taskId, string leaseToken, double? progress, string? message,
        IReadOnlyList<string>? chunks = null, IReadOnlyList<string>? logs = null) =>
        (await ReportProgressManyAsync([new ProgressReport(taskId, leaseToken, progress, message, chunks, logs)]).ConfigureAwait(false))[0];

    public async Task<IReadOnlyList<StoreOutcome>> ReportProgressManyAsync(IReadOnlyList<ProgressReport> reports)
    {
        var taskKeys = new RedisKey[reports.Count];
        var values = new List<RedisValue>(reports.Count * 9);
        for (var i = 0; i < reports.Count; i++)
        {
            var r = reports[i];
            var (chunks, lines) = (r.Chunks ?? [], r.Logs ?? []);
            taskKeys[i] = Keys.Task(r.TaskId);
            values.AddRange([r.TaskId, r.LeaseToken, r.Progress?.ToString("R", CultureInfo.InvariantCulture) ?? "", r.Message ?? "", chunks.Count, lines.Count]);
            values.AddRange(chunks.Select(c => (RedisValue)c));
            values.AddRange(lines.Select(l => (RedisValue)l));
        }
        var reply = (RedisResult[])(await Scripts.RunAsync(Script.ProgressBatch, taskKeys, [.. values]).ConfigureAwait(false))!;
        return reply.Select(Replies.ReadOutcome).ToArray();
    }


    public async Task<StoreOutcome> PutArtifactAsync(string taskId, string leaseToken, string name, string contentType, byte[] data) =>
        Replies.ReadOutcome(await Scripts.RunAsync(Script.PutArtifact,
            [Keys.Task(taskId), Keys.Artifacts(taskId), Keys.Artifact(taskId, name)],
            [leaseToken, name, contentType, data, Options.MaxOutputBytes]).ConfigureAwait(false));

    public async Task<StoreOutcome> CancelAsync(string taskId, string tenant = Tenants.All) =>
        Replies.ReadOutcome(await Scripts.RunAsync(Script.Cancel, [Keys.Task(taskId)], [taskId, NowMs, tenant]).ConfigureAwait(false));

    public async Task<StoreOutcome> DeleteAsync(string taskId, string tenant = Tenants.All) =>
        Replies.ReadOutcome(await Scripts.RunAsync(Script.Delete, [Keys.Task(taskId)], [taskId, tenant]).ConfigureAwait(false));

    public async Task<StoreOutcome> RetryAsync(string taskId, string tenant = Tenants.All) =>
        Replies.ReadOutcome(await Scripts.RunAsync(Script.Retry, [Keys.Task(taskId)], [taskId, NowMs, tenant]).ConfigureAwait(false));

    public Task<long> RetryEndedAsync(RetryFilter filter) => RetryEndedAsync(filter, 500);

    /// <summary>The bulk retry, walking <paramref name="batch"/> ended tasks a script call.</summary>
    public async Task<long> RetryEndedAsync(RetryFilter filter, int batch)
    {
        var now = NowMs;
        RedisValue from = filter.Since.ToUnixTimeMilliseconds();
        RedisValue skip = 0;
        long retried = 0;
        // One script call a batch: the walk holds Redis for one batch at a time, not for all of them.
        while (true)
        {
            var reply = (RedisResult[])(await Scripts.RunAsync(Script.RetryEnded, [Keys.Finished],
                [now, from, batch, string.Join(',', filter.Statuses), string.Join(',', filter.Types),
                    filter.Tenants is null ? "" : string.Join(',', filter.Tenants), skip]).ConfigureAwait(false))!;
            retried += (long)reply[0];
            if (reply[1].IsNull || string.IsNullOrEmpty((string?)reply[1]))
            {
                return retried;
            }
            from = (string?)reply[1];
            skip = (long)reply[2];
        }
    }

    public async Task<bool> SetPausedAsync(string type, bool paused) =>
        (int)await Scripts.RunAsync(Script.Pause, [Keys.Paused, Keys.Queue(type)], [type, paused ? "1" : "0"]).ConfigureAwait(false) == 1;

    private static string KindName(FailureKind kind) => kind switch
    {
        FailureKind.Timeout => "timeout",
        FailureKind.Canceled => "canceled",
        FailureKind.HandedBack => "handed_back",
        _ => "error",
    };
}
