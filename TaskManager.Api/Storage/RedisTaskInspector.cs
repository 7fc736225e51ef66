using System.Globalization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>Reads of tasks in Redis: one script call each.</summary>
public sealed class RedisTaskInspector(RedisScripts scripts, RedisKeys keys, TimeProvider time, IOptions<TaskManagerOptions> options)
    : RedisStore(scripts, keys, time, options), ITaskInspector
{
    public async Task<TaskRecord?> GetAsync(string taskId)
    {
        var liveSince = NowMs - (Options.WorkerDeadSeconds * 1000L);
        var r = Replies.Of<Replies.TaskRead>(await Scripts.RunAsync(Script.Get, [Keys.Task(taskId)], [taskId, liveSince]).ConfigureAwait(false));
        var hash = r.List(Replies.TaskRead.Task);
        return hash.Length == 0
            ? null
            : RedisRecords.Task(hash) with { AttemptsJson = r.List(Replies.TaskRead.Attempts).Select(a => (string)a!).ToArray() };
    }

    public async Task<TaskPage> ListAsync(TaskQuery query)
    {
        RedisKey[] indexes = [.. Indexes(query.Tenants ?? [Tenants.Default], query.Statuses, query.Types)];
        var r = Replies.Of<Replies.Page>(await Scripts.RunAsync(Script.List, indexes, [query.Limit, query.Cursor ?? "", query.Model ?? ""])
            .ConfigureAwait(false));
        var items = new List<TaskRecord>();
        foreach (var hash in r.List(Replies.Page.Tasks))
        {
            // A task deleted between the index read and the hash read leaves an empty hash.
            if (((RedisResult[])hash!).Length > 0)
            {
                items.Add(RedisRecords.Task((RedisResult[])hash!));
            }
        }
        // The cursor is the last task looked at: the last listed, or past it where a model filter skipped some.
        return new TaskPage(items, r.Long(Replies.Page.More) == 1 ? r.String(Replies.Page.Cursor) : null);
    }

    public async Task<IReadOnlyList<TaskEvent>> ReadEventsAsync(string taskId, string? afterId, int count, bool follows = false)
    {
        // Event n is the list's element n - 1. Three events are implied by the task, not stored
        // (see Scripts/lib/events.lua): event 0, the submission's 'queued'; the 'running' of an
        // attempt that has stored no event yet; and 'succeeded'. The last two follow the stored ones.
        var after = afterId is null ? -1 : long.Parse(afterId, CultureInfo.InvariantCulture);
        var events = new List<TaskEvent>(count);
        if (after < 0)
        {
            events.Add(new TaskEvent("0", "status", 0, """{"status":"queued"}"""));
        }
        var from = Math.Max(after, 0);
        var r = Replies.Of<Replies.Events>(await Scripts.RunAsync(Script.Events, [Keys.Task(taskId), Keys.Events(taskId)],
            [from, from + count - events.Count - 1, follows ? "1" : "0"]).ConfigureAwait(false));
        var stored = r.Long(Replies.Events.Stored);
        var attempt = (int)r.Long(Replies.Events.Attempt);
        var slice = r.List(Replies.Events.Events);
        for (var i = 0; i < slice.Length; i++)
        {
            var (kind, eventAttempt, data) = ParseEvent((string)slice[i]!);
            events.Add(new TaskEvent((from + i + 1).ToString(CultureInfo.InvariantCulture), kind, eventAttempt, data));
        }

        var implied = new List<string>(2);
        if (r.String(Replies.Events.RunningPending) == "1" && attempt >= 1)
        {
            implied.Add("""{"status":"running"}""");
        }
        if (r.String(Replies.Events.Status) == TaskState.Succeeded)
        {
            implied.Add("""{"status":"succeeded"}""");
        }
        for (var j = 0; j < implied.Count && events.Count < count; j++)
        {
            var id = stored + 1 + j;
            if (id > after)
            {
                events.Add(new TaskEvent(id.ToString(CultureInfo.InvariantCulture), "status", attempt, implied[j]));
            }
        }
        return events;
    }

    public async Task<string?> FollowAsync(string taskId)
    {
        // The events script with an empty slice (its last event before its first): it marks the
        // task followed (a write only the first time) and answers the status, reading no event.
        var r = Replies.Of<Replies.Events>(await Scripts.RunAsync(Script.Events, [Keys.Task(taskId), Keys.Events(taskId)],
            [0, -1, "1"]).ConfigureAwait(false));
        var status = r.String(Replies.Events.Status);
        return string.IsNullOrEmpty(status) ? null : status;
    }

    /// <summary>A stored event, 'kind|attempt|data': neither the kind nor the attempt holds a bar.</summary>
    private static (string Kind, int Attempt, string Data) ParseEvent(string text)
    {
        var first = text.IndexOf('|', StringComparison.Ordinal);
        var second = text.IndexOf('|', first + 1);
        return (text[..first], int.Parse(text.AsSpan(first + 1, second - first - 1), CultureInfo.InvariantCulture), text[(second + 1)..]);
    }

    public async Task<(string ContentType, byte[] Data)?> GetArtifactAsync(string taskId, string name)
    {
        var result = (RedisResult[])(await Scripts.RunAsync(Script.GetArtifact, [Keys.Artifacts(taskId), Keys.Artifact(taskId, name)], [name])
            .ConfigureAwait(false))!;
        if (result.Length == 0)
        {
            return null;
        }
        var r = new Reply<Replies.Artifact>(result);
        return (r.String(Replies.Artifact.ContentType)!, (byte[])r[Replies.Artifact.Data]!);
    }

    public async Task<StatsSnapshot> ReadStatsAsync(IReadOnlyList<string> tenants)
    {
        RedisKey[] statsKeys = [Keys.StatsTotals, .. Indexes(tenants, TaskState.All, TaskTypes.All)];
        var r = Replies.Of<Replies.Stats>(await Scripts.RunAsync(Script.Stats, statsKeys, [NowMs]).ConfigureAwait(false));
        var counts = new List<(string, string, long)>();
        var c = r.List(Replies.Stats.Counts);
        for (var i = 0; i + 2 < c.Length; i += 3)
        {
            counts.Add(((string)c[i]!, (string)c[i + 1]!, (long)c[i + 2]));
        }
        var minutes = Pairs(r.List(Replies.Stats.Minutes), v => Counts((RedisResult[])v!))
            .OrderBy(m => int.Parse(m.Key, CultureInfo.InvariantCulture)).Select(m => (IReadOnlyDictionary<string, long>)m.Value).ToArray();
        return new StatsSnapshot(
            counts,
            Pairs(r.List(Replies.Stats.Depths), v => (long)v),
            r.List(Replies.Stats.Paused).Select(p => (string)p!).ToHashSet(StringComparer.Ordinal),
            Counts(r.List(Replies.Stats.Totals)),
            minutes,
            Pairs(r.List(Replies.Stats.Wait), v => HistogramOf((RedisResult[])v!)),
            Pairs(r.List(Replies.Stats.Run), v => HistogramOf((RedisResult[])v!)));
    }

    /// <summary>The listing indexes of every tenant, status and type given.</summary>
    private IEnumerable<RedisKey> Indexes(IReadOnlyList<string> tenants, IReadOnlyList<string> statuses, IReadOnlyList<string> types) =>
        from tenant in tenants from status in statuses from type in types select (RedisKey)Keys.Index(tenant, status, type);

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
}
