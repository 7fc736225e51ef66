using System.Globalization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>
/// Tasks and workers in Redis. Each method is one script call, so one round trip; the scripts
/// are in <c>Storage/Scripts</c>.
/// </summary>
public sealed class RedisTaskStore(IConnectionMultiplexer redis, RedisKeys keys, LuaScripts scripts, TimeProvider time, IOptions<TaskManagerOptions> options)
    : ITaskQueue, ITaskInspector, IWorkerRegistry, ISchedulerStore, IQueueControl
{
    private IDatabase Db => redis.GetDatabase();

    private long NowMs => time.GetUtcNow().ToUnixTimeMilliseconds();

    public async Task<SubmitResult> SubmitAsync(TaskRequest request, string? traceParent, string tenant = Tenants.Default,
        string? idempotencyKey = null, string? requestHash = null, WaitingLease? handTo = null)
    {
        var now = time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        // Time-ordered ids: the listing indexes and queue ties order by id.
        var id = TaskIds.New(now);
        var o = options.Value;
        var values = new List<RedisValue>(6 + TaskValueCount + (handTo is null ? 0 : 6))
        {
            nowMs, tenant, o.TenantQueueCap, idempotencyKey ?? "", requestHash ?? "", o.IdempotencyHours * 3600,
        };
        AddTaskValues(values, id, request, traceParent);
        if (handTo is not null)
        {
            values.AddRange([handTo.WorkerId, handTo.MaxTasks, .. LeaseSettings(nowMs)]);
        }
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.Submit, values: [.. values]).ConfigureAwait(false))!;
        return (string?)result[0] switch
        {
            // The task as created, queued, even when a waiting lease took it in the same call: the
            // answer to a submission describes what it created, as it would without the hand-off.
            "created" => new SubmitResult(SubmitKind.Created, NewRecord(id, request, tenant, nowMs),
                Handed: result.Length > 1 ? ToLease((RedisResult[])result[1]!) : null),
            "existing" => new SubmitResult(SubmitKind.Existing, ToRecord((RedisResult[])result[1]!)),
            "mismatch" => new SubmitResult(SubmitKind.Mismatch, null),
            "gone" => new SubmitResult(SubmitKind.Gone, null),
            "queue_full" => new SubmitResult(SubmitKind.QueueFull, null, (long)result[1]),
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
        var now = time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        var values = new List<RedisValue>(3 + (requests.Count * TaskValueCount)) { nowMs, tenant, options.Value.TenantQueueCap };
        var ids = new string[requests.Count];
        for (var i = 0; i < requests.Count; i++)
        {
            ids[i] = TaskIds.New(now);
            AddTaskValues(values, ids[i], requests[i], traceParent);
        }
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.SubmitBatch, values: [.. values]).ConfigureAwait(false))!;
        var queued = (long)result[0];
        var results = new SubmitResult[requests.Count];
        for (var i = 0; i < requests.Count; i++)
        {
            results[i] = (long)result[i + 1] == 1
                ? new SubmitResult(SubmitKind.Created, NewRecord(ids[i], requests[i], tenant, nowMs))
                : new SubmitResult(SubmitKind.QueueFull, null, Math.Max(queued, options.Value.TenantQueueCap));
        }
        return results;
    }

    /// <summary>How many values one task takes in a submit script's arguments (TASK_VALUES in common.lua).</summary>
    private const int TaskValueCount = 12;

    private static void AddTaskValues(List<RedisValue> values, string id, TaskRequest request, string? traceParent)
    {
        values.Add(id);
        values.Add(request.Type);
        values.Add(request.Priority);
        values.Add(request.InputJson);
        values.Add(request.TimeoutSeconds);
        values.Add(request.MaxAttempts);
        values.Add(request.Model ?? "");
        values.Add(request.MetadataJson ?? "");
        values.Add(request.Webhook ?? "");
        values.Add(traceParent ?? "");
        values.Add(request.Requirements?.GpuMemoryMb?.ToString(CultureInfo.InvariantCulture) ?? "");
        values.Add(request.Requirements?.Gpu ?? "");
    }

    private static TaskRecord NewRecord(string id, TaskRequest request, string tenant, long nowMs) => new()
    {
        Id = id,
        Type = request.Type,
        Status = TaskState.Queued,
        Tenant = tenant,
        Model = request.Model,
        Priority = request.Priority,
        InputJson = request.InputJson,
        MaxAttempts = request.MaxAttempts,
        TimeoutSeconds = request.TimeoutSeconds,
        CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(nowMs),
        MetadataJson = request.MetadataJson,
        Webhook = request.Webhook,
        Requirements = request.Requirements,
    };

    /// <summary>A lease's arguments after the worker and its most tasks: TTL (ms), token base, depth, live since (ms).</summary>
    private RedisValue[] LeaseSettings(long now)
    {
        var o = options.Value;
        return [o.LeaseTtlSeconds * 1000L, Guid.NewGuid().ToString("N"), o.LeaseScanDepth, now - (o.WorkerStaleSeconds * 1000L)];
    }

    public async Task<LeaseResult> LeaseAsync(string workerId, int maxTasks)
    {
        var now = NowMs;
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.Lease, values: [workerId, now, maxTasks, .. LeaseSettings(now)])
            .ConfigureAwait(false))!;
        return ToLease(result);
    }

    /// <summary>lease_for's answer (common.lua).</summary>
    private static LeaseResult ToLease(RedisResult[] result)
    {
        if ((string?)result[0] != "ok")
        {
            return LeaseResult.Unknown;
        }
        var types = Split((string?)result[1]);
        var models = Split((string?)result[2]);
        var left = Split((string?)result[4]).Select(e => e.Split('|', 2)).Select(p => (p[0], p[1])).ToArray();
        var tasks = new List<LeasedTask>(result.Length - 5);
        for (var i = 5; i < result.Length; i++)
        {
            var f = (RedisResult[])result[i]!;
            tasks.Add(new LeasedTask(
                TaskId: (string)f[0]!,
                LeaseToken: (string)f[1]!,
                Type: (string)f[2]!,
                Model: NullIfEmpty((string?)f[3]),
                InputJson: (string)f[4]!,
                MetadataJson: NullIfEmpty((string?)f[5]),
                Attempt: (int)f[6],
                MaxAttempts: (int)f[7],
                TimeoutSeconds: (int)f[8],
                DeadlineAt: DateTimeOffset.FromUnixTimeMilliseconds((long)f[9]),
                TraceParent: NullIfEmpty((string?)f[10]),
                WaitMs: (long)f[11]));
        }
        return new LeaseResult(false, types, models, (int)result[3] == 1, left, tasks);
    }

    public Task<StoreOutcome> CompleteAsync(string taskId, string leaseToken, string outputJson) =>
        ChangeAsync(scripts.Complete, [taskId, leaseToken, NowMs, outputJson]);

    public async Task<(IReadOnlyList<StoreOutcome> Outcomes, LeaseResult? Lease)> CompleteManyAsync(
        IReadOnlyList<CompletedTask> results, string? leaseFor = null, int maxTasks = 0)
    {
        var now = NowMs;
        var leasing = leaseFor is not null && maxTasks > 0;
        var values = new List<RedisValue>(7 + (results.Count * 5)) { now, leasing ? leaseFor : "" };
        if (leasing)
        {
            values.AddRange([maxTasks, .. LeaseSettings(now)]);
        }
        foreach (var r in results)
        {
            var (chunks, lines) = (r.Chunks ?? [], r.Logs ?? []);
            values.Add(r.TaskId);
            values.Add(r.LeaseToken);
            values.Add(r.OutputJson);
            values.Add(chunks.Count);
            values.Add(lines.Count);
            values.AddRange(chunks.Select(c => (RedisValue)c));
            values.AddRange(lines.Select(l => (RedisValue)l));
        }
        // The next lease is made by the same script, after the results: one script call.
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.CompleteBatch, values: [.. values]).ConfigureAwait(false))!;
        var outcomes = ((RedisResult[])result[0]!).Select(r => ToOutcome((RedisResult[])r!)).ToArray();
        return (outcomes, result.Length > 1 ? ToLease((RedisResult[])result[1]!) : null);
    }

    public Task<StoreOutcome> FailAsync(string taskId, string leaseToken, string errorJson, bool retryable, FailureKind kind) =>
        ChangeAsync(scripts.Fail, [taskId, leaseToken, NowMs, errorJson, retryable ? "1" : "0", KindName(kind), Delays()]);

    public Task<StoreOutcome> ReportProgressAsync(string taskId, string leaseToken, double? progress, string? message,
        IReadOnlyList<string>? chunks = null, IReadOnlyList<string>? logs = null)
    {
        chunks ??= [];
        logs ??= [];
        var values = new List<RedisValue>(5 + chunks.Count + logs.Count)
        {
            taskId, leaseToken, progress?.ToString("R", CultureInfo.InvariantCulture) ?? "", message ?? "", chunks.Count,
        };
        values.AddRange(chunks.Select(c => (RedisValue)c));
        values.AddRange(logs.Select(l => (RedisValue)l));
        return ChangeAsync(scripts.Progress, [.. values]);
    }

    public async Task<StoreOutcome> PutArtifactAsync(string taskId, string leaseToken, string name, string contentType, byte[] data)
    {
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.PutArtifact, values:
            [taskId, leaseToken, name, contentType, data, options.Value.MaxOutputBytes]).ConfigureAwait(false))!;
        return (string?)result[0] == "too_large"
            ? new StoreOutcome(StoreError.Conflict, (string?)result[1])
            : ToOutcome(result);
    }

    public Task<StoreOutcome> CancelAsync(string taskId, string tenant = Tenants.All) =>
        ChangeAsync(scripts.Cancel, [taskId, NowMs, tenant]);

    public Task<StoreOutcome> DeleteAsync(string taskId, string tenant = Tenants.All) => ChangeAsync(scripts.Delete, [taskId, tenant]);

    public async Task<TaskRecord?> GetAsync(string taskId)
    {
        var liveSince = NowMs - (options.Value.WorkerDeadSeconds * 1000L);
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.Get, values: [taskId, liveSince]).ConfigureAwait(false))!;
        var hash = (RedisResult[])result[0]!;
        if (hash.Length == 0)
        {
            return null;
        }
        return ToRecord(hash) with { AttemptsJson = ((RedisResult[])result[1]!).Select(a => (string)a!).ToArray() };
    }

    public async Task<TaskPage> ListAsync(TaskQuery query)
    {
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.List, values:
        [
            query.Limit, query.Cursor ?? "", string.Join(',', query.Statuses), string.Join(',', query.Types),
            string.Join(',', query.Tenants ?? [Tenants.Default]),
        ]).ConfigureAwait(false))!;
        var items = new List<TaskRecord>(result.Length - 1);
        for (var i = 1; i < result.Length; i++)
        {
            var hash = (RedisResult[])result[i]!;
            // A task deleted between the index read and the hash read leaves an empty hash.
            if (hash.Length > 0)
            {
                items.Add(ToRecord(hash));
            }
        }
        var more = (int)result[0] == 1;
        return new TaskPage(items, more && items.Count > 0 ? items[^1].Id : null);
    }

    public async Task<string> RegisterAsync(WorkerRegistration registration)
    {
        var id = "w_" + Guid.CreateVersion7(time.GetUtcNow()).ToString("N");
        var state = registration.State ?? new WorkerState("{}", 0, [], []);
        await scripts.EvaluateAsync(Db, scripts.Register, values:
            [
                id, NowMs, registration.Name, string.Join(',', registration.TaskTypes), registration.CapabilitiesJson,
                registration.Capacity, state.GpuFreeMb, GpuNames(state), string.Join(',', state.Models),
            ]).ConfigureAwait(false);
        return id;
    }

    public async Task<HeartbeatResult?> HeartbeatAsync(string workerId, WorkerState state, IReadOnlyList<(string TaskId, string LeaseToken)> running,
        bool holdIfIdle = false)
    {
        var values = new RedisValue[8 + (running.Count * 2)];
        values[0] = workerId;
        values[1] = NowMs;
        values[2] = options.Value.LeaseTtlSeconds * 1000L;
        values[3] = state.Json;
        values[4] = state.GpuFreeMb;
        values[5] = GpuNames(state);
        values[6] = string.Join(',', state.Models);
        values[7] = holdIfIdle ? "1" : "0";
        for (var i = 0; i < running.Count; i++)
        {
            values[8 + (2 * i)] = running[i].TaskId;
            values[9 + (2 * i)] = running[i].LeaseToken;
        }
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.Heartbeat, values: values).ConfigureAwait(false))!;
        if ((string?)result[0] != "ok")
        {
            return null;
        }
        return new HeartbeatResult(result.Skip(3).Select(r => (string)r!).ToArray(), (string?)result[1] == "1", (string?)result[2] == "1");
    }

    public async Task TouchWorkersAsync(IReadOnlyCollection<string> workerIds)
    {
        var values = new RedisValue[workerIds.Count + 1];
        values[0] = NowMs;
        var i = 1;
        foreach (var id in workerIds)
        {
            values[i++] = id;
        }
        await scripts.EvaluateAsync(Db, scripts.TouchWorkers, values: values).ConfigureAwait(false);
    }

    public async Task<bool> DrainAsync(string workerId) =>
        (int)await scripts.EvaluateAsync(Db, scripts.Drain, values: [workerId]).ConfigureAwait(false) == 1;

    public async Task<IReadOnlyList<WorkerRecord>> ListWorkersAsync(int max)
    {
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.Workers, values: [max]).ConfigureAwait(false))!;
        return result.Select(r => ToWorker(Fields((RedisResult[])r!))).ToArray();
    }

    public async Task<IReadOnlyList<TaskEvent>> ReadEventsAsync(string taskId, string? afterId, int count, bool follows = false)
    {
        // Event n is the list's element n - 1. Three events are implied by the task, not stored
        // (see emit in common.lua): event 0, the submission's 'queued'; the 'running' of an
        // attempt that has stored no event yet; and 'succeeded'. The last two follow the stored ones.
        var after = afterId is null ? -1 : long.Parse(afterId, CultureInfo.InvariantCulture);
        var events = new List<TaskEvent>(count);
        if (after < 0)
        {
            events.Add(new TaskEvent("0", "status", 0, """{"status":"queued"}"""));
        }
        var from = Math.Max(after, 0);
        var r = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.Events, values:
            [taskId, from, from + count - events.Count - 1, follows ? "1" : "0"]).ConfigureAwait(false))!;
        var stored = (long)r[0];
        var status = (string)r[1]!;
        var attempt = int.Parse((string)r[2]!, CultureInfo.InvariantCulture);
        for (var i = 5; i < r.Length; i++)
        {
            var (kind, eventAttempt, data) = ParseEvent((string)r[i]!);
            events.Add(new TaskEvent((from + i - 4).ToString(CultureInfo.InvariantCulture), kind, eventAttempt, data));
        }

        var implied = new List<(string Kind, string Data)>(2);
        if ((string?)r[3] == "1" && attempt >= 1)
        {
            implied.Add(("status", """{"status":"running"}"""));
        }
        if (status == TaskState.Succeeded && !EndsSucceeded((string?)r[4]))
        {
            implied.Add(("status", """{"status":"succeeded"}"""));
        }
        for (var j = 0; j < implied.Count && events.Count < count; j++)
        {
            var id = stored + 1 + j;
            if (id > after)
            {
                events.Add(new TaskEvent(id.ToString(CultureInfo.InvariantCulture), implied[j].Kind, attempt, implied[j].Data));
            }
        }
        return events;
    }

    /// <summary>True for a stored 'succeeded' (a task finished before that event was implied).</summary>
    private static bool EndsSucceeded(string? last) =>
        !string.IsNullOrEmpty(last) && ParseEvent(last) is ("status", _, var data) && data.Contains("\"succeeded\"", StringComparison.Ordinal);

    /// <summary>A stored event, 'kind|attempt|data': neither the kind nor the attempt holds a bar.</summary>
    private static (string Kind, int Attempt, string Data) ParseEvent(string text)
    {
        var first = text.IndexOf('|', StringComparison.Ordinal);
        var second = text.IndexOf('|', first + 1);
        return (text[..first], int.Parse(text.AsSpan(first + 1, second - first - 1), CultureInfo.InvariantCulture), text[(second + 1)..]);
    }

    public async Task<(string ContentType, byte[] Data)?> GetArtifactAsync(string taskId, string name)
    {
        var result = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.GetArtifact, values: [taskId, name]).ConfigureAwait(false))!;
        return result.Length == 0 ? null : ((string)result[0]!, (byte[])result[1]!);
    }

    public async Task<StatsSnapshot> ReadStatsAsync(IReadOnlyList<string> tenants)
    {
        var r = (RedisResult[])(await scripts.EvaluateAsync(Db, scripts.Stats, values:
            [NowMs, string.Join(',', tenants), string.Join(',', TaskState.All)]).ConfigureAwait(false))!;
        var counts = new List<(string, string, long)>();
        var c = (RedisResult[])r[0]!;
        for (var i = 0; i + 2 < c.Length; i += 3)
        {
            counts.Add(((string)c[i]!, (string)c[i + 1]!, (long)c[i + 2]));
        }
        var depths = Pairs((RedisResult[])r[1]!, v => (long)v);
        var paused = ((RedisResult[])r[2]!).Select(p => (string)p!).ToHashSet(StringComparer.Ordinal);
        var totals = Counts((RedisResult[])r[3]!);
        var minutes = Pairs((RedisResult[])r[4]!, v => Counts((RedisResult[])v!))
            .OrderBy(m => int.Parse(m.Key, CultureInfo.InvariantCulture)).Select(m => (IReadOnlyDictionary<string, long>)m.Value).ToArray();
        var wait = Pairs((RedisResult[])r[5]!, v => HistogramOf((RedisResult[])v!));
        var run = Pairs((RedisResult[])r[6]!, v => HistogramOf((RedisResult[])v!));
        return new StatsSnapshot(counts, depths, paused, totals, minutes, wait, run);
    }

    public async Task<bool> SetPausedAsync(string type, bool paused) =>
        (int)await scripts.EvaluateAsync(Db, scripts.Pause, values: [type, paused ? "1" : "0"]).ConfigureAwait(false) == 1;

    private static Dictionary<string, T> Pairs<T>(RedisResult[] flat, Func<RedisResult, T> value)
    {
        var pairs = new Dictionary<string, T>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < flat.Length; i += 2)
        {
            pairs[(string)flat[i]!] = value(flat[i + 1]);
        }
        return pairs;
    }

    private static Dictionary<string, long> Counts(RedisResult[] hash) => Pairs(hash, v => long.Parse((string)v!, CultureInfo.InvariantCulture));

    private static HistogramData HistogramOf(RedisResult[] hash)
    {
        var fields = Counts(hash);
        var buckets = Enumerable.Range(0, Histogram.BoundsMs.Count + 1)
            .Select(i => fields.GetValueOrDefault(i.ToString(CultureInfo.InvariantCulture))).ToArray();
        // The count is the sum of the buckets (the scripts do not store it twice).
        return new HistogramData(buckets, buckets.Sum(), fields.GetValueOrDefault("sum"));
    }

    // Lowercase and one a line: the lease script matches a pattern against any of them.
    private static string GpuNames(WorkerState state) => string.Join('\n', state.GpuNames.Select(n => n.ToLowerInvariant()));

    private static string[] Split(string? list) => string.IsNullOrEmpty(list) ? [] : list.Split(',');

    public async Task<IReadOnlyList<SweptTask>> SweepDeadlinesAsync(int batch) =>
        Swept(await scripts.EvaluateAsync(Db, scripts.SweepDeadlines, values: [NowMs, batch, Delays()]).ConfigureAwait(false));

    public async Task<IReadOnlyList<SweptTask>> SweepLeasesAsync(int batch) =>
        Swept(await scripts.EvaluateAsync(Db, scripts.SweepLeases, values: [NowMs, batch]).ConfigureAwait(false));

    public async Task<IReadOnlyList<string>> SweepOverdueRetriesAsync(int batch)
    {
        var cutoff = NowMs - (options.Value.RetryGraceSeconds * 1000L);
        var result = await scripts.EvaluateAsync(Db, scripts.SweepScheduled, values: [cutoff, batch, NowMs]).ConfigureAwait(false);
        return ((RedisResult[])result!).Select(r => (string)r!).ToArray();
    }

    public async Task<int> SweepRetentionAsync(int batch)
    {
        var cutoff = NowMs - (long)TimeSpan.FromDays(options.Value.RetentionDays).TotalMilliseconds;
        return (int)await scripts.EvaluateAsync(Db, scripts.SweepRetention, values: [cutoff, batch]).ConfigureAwait(false);
    }

    public async Task<int> SweepDeadWorkersAsync(int batch)
    {
        var cutoff = NowMs - (options.Value.DeadWorkerRetentionMinutes * 60_000L);
        return (int)await scripts.EvaluateAsync(Db, scripts.SweepWorkers, values: [cutoff, batch]).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<OutboxEntry>> TakeOutboxAsync(int batch)
    {
        var entries = await Db.ListLeftPopAsync(keys.Outbox, batch).ConfigureAwait(false);
        if (entries is null)
        {
            return [];
        }
        // schedule|id|attempt|due or delete|id
        return entries.Select(e => ((string)e!).Split('|')).Select(p => p[0] == "delete"
            ? new OutboxEntry(true, p[1], 0, default)
            : new OutboxEntry(false, p[1], int.Parse(p[2], CultureInfo.InvariantCulture),
                DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(p[3], CultureInfo.InvariantCulture)))).ToArray();
    }

    public async Task<bool> AttachRetryJobAsync(string taskId, int attempt, string jobId) =>
        (int)await scripts.EvaluateAsync(Db, scripts.AttachJob, values: [taskId, attempt, jobId]).ConfigureAwait(false) == 1;

    public async Task<string?> GetRetryJobAsync(string taskId) =>
        await Db.HashGetAsync(keys.Task(taskId), "retry_job").ConfigureAwait(false);

    public async Task<bool> RequeueAsync(string taskId, int? attempt) =>
        (int)await scripts.EvaluateAsync(Db, scripts.Requeue,
            values: [taskId, attempt?.ToString(CultureInfo.InvariantCulture) ?? "", NowMs]).ConfigureAwait(false) == 1;

    /// <summary>Fresh jittered backoff delays for the scripts that may schedule a retry.</summary>
    private string Delays() => options.Value.Retry.DelaysMsList(Random.Shared);

    private static IReadOnlyList<SweptTask> Swept(RedisResult result)
    {
        var items = (RedisResult[])result!;
        var swept = new SweptTask[items.Length / 4];
        for (var i = 0; i < swept.Length; i++)
        {
            swept[i] = new SweptTask((string)items[4 * i]!, (string)items[(4 * i) + 1]!, (string)items[(4 * i) + 2]!,
                NullIfEmpty((string?)items[(4 * i) + 3]));
        }
        return swept;
    }

    private async Task<StoreOutcome> ChangeAsync(string script, RedisValue[] values) =>
        ToOutcome((RedisResult[])(await scripts.EvaluateAsync(Db, script, values: values).ConfigureAwait(false))!);

    private static StoreOutcome ToOutcome(RedisResult[] result)
    {
        var code = (string)result[0]!;
        var status = result.Length > 1 ? (string?)result[1] : null;
        return code switch
        {
            "ok" => new StoreOutcome(StoreError.None, status, result.Length > 2 ? (string?)result[2] : null,
                result.Length >= 7 ? new EndedAttempt(
                    (int)result[3],
                    Time((string?)result[4]),
                    NullIfEmpty((string?)result[5]),
                    NullIfEmpty((string?)result[6])) : null),
            "not_found" => new StoreOutcome(StoreError.NotFound, null),
            "stale" => new StoreOutcome(StoreError.StaleLease, status),
            "conflict" => new StoreOutcome(StoreError.Conflict, status),
            _ => throw new InvalidOperationException($"Unexpected script reply '{code}'."),
        };
    }

    private static DateTimeOffset? Time(string? ms) =>
        string.IsNullOrEmpty(ms) ? null : DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(ms, CultureInfo.InvariantCulture));

    private static string KindName(FailureKind kind) => kind switch
    {
        FailureKind.Timeout => "timeout",
        FailureKind.Canceled => "canceled",
        FailureKind.HandedBack => "handed_back",
        _ => "error",
    };

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static Dictionary<string, string> Fields(RedisResult[] hash)
    {
        var f = new Dictionary<string, string>(hash.Length / 2, StringComparer.Ordinal);
        for (var i = 0; i + 1 < hash.Length; i += 2)
        {
            f[(string)hash[i]!] = (string)hash[i + 1]!;
        }
        return f;
    }

    private static WorkerRecord ToWorker(Dictionary<string, string> f) => new(
        f["id"],
        f.GetValueOrDefault("name") ?? "",
        Split(f.GetValueOrDefault("types")),
        f.GetValueOrDefault("info") ?? "{}",
        f.GetValueOrDefault("state"),
        Int(f, "capacity") ?? 1,
        Int(f, "running") ?? 0,
        Long(f, "completed") ?? 0,
        Long(f, "failed") ?? 0,
        f.GetValueOrDefault("draining") == "1",
        Time(f, "registered") ?? DateTimeOffset.UnixEpoch,
        Time(f, "last_seen") ?? DateTimeOffset.UnixEpoch);

    internal static TaskRecord ToRecord(RedisResult[] hash)
    {
        var f = Fields(hash);
        return new TaskRecord
        {
            Id = f["id"],
            Type = f["type"],
            Status = f["status"],
            Tenant = f.GetValueOrDefault("tenant") ?? Tenants.Default,
            Model = f.GetValueOrDefault("model"),
            Priority = Int(f, "priority") ?? TaskLimits.DefaultPriority,
            InputJson = f["input"],
            OutputJson = f.GetValueOrDefault("output"),
            ErrorJson = f.GetValueOrDefault("error"),
            Progress = f.TryGetValue("progress", out var p) ? double.Parse(p, CultureInfo.InvariantCulture) : null,
            ProgressMessage = f.GetValueOrDefault("progress_message"),
            Attempt = Int(f, "attempt") ?? 0,
            MaxAttempts = Int(f, "max_attempts") ?? TaskLimits.DefaultMaxAttempts,
            WorkerId = f.GetValueOrDefault("worker"),
            QueuePosition = f.TryGetValue("queue_position", out var q) ? long.Parse(q, CultureInfo.InvariantCulture) : null,
            TimeoutSeconds = Int(f, "timeout") ?? TaskLimits.DefaultTimeoutSeconds,
            CreatedAt = Time(f, "created") ?? DateTimeOffset.UnixEpoch,
            StartedAt = Time(f, "started"),
            CompletedAt = Time(f, "completed"),
            MetadataJson = f.GetValueOrDefault("metadata"),
            Webhook = f.GetValueOrDefault("webhook"),
            RetryAt = Time(f, "retry_at"),
            Requirements = f.ContainsKey("req_mem") || f.ContainsKey("req_gpu")
                ? new TaskRequirements(Long(f, "req_mem"), f.GetValueOrDefault("req_gpu"))
                : null,
            WaitingReason = f.GetValueOrDefault("waiting_reason"),
        };
    }

    private static int? Int(Dictionary<string, string> f, string name) =>
        f.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : null;

    private static long? Long(Dictionary<string, string> f, string name) =>
        f.TryGetValue(name, out var v) ? long.Parse(v, CultureInfo.InvariantCulture) : null;

    private static DateTimeOffset? Time(Dictionary<string, string> f, string name) =>
        f.TryGetValue(name, out var v) ? DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(v, CultureInfo.InvariantCulture)) : null;
}
