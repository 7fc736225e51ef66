namespace TaskManager.Api.Domain;

/// <summary>Reads of tasks, apart from the writes.</summary>
public interface ITaskInspector
{
    Task<TaskRecord?> GetAsync(string taskId);

    Task<TaskPage> ListAsync(TaskQuery query);

    /// <summary>
    /// Events after <paramref name="afterId"/> (null: from the start), oldest first. A reader that
    /// <paramref name="follows"/> the task live (subscribed to its signal first) marks it followed,
    /// so that its next events are signalled.
    /// </summary>
    Task<IReadOnlyList<TaskEvent>> ReadEventsAsync(string taskId, string? afterId, int count, bool follows = false);

    /// <summary>
    /// Marks the task followed, as <see cref="ReadEventsAsync"/> with <c>follows</c> does, and
    /// returns its status (null: no such task), reading no event: what a waiter that only needs to
    /// know whether the task is final calls after subscribing, and again at each signal.
    /// </summary>
    Task<string?> FollowAsync(string taskId);

    Task<(string ContentType, byte[] Data)?> GetArtifactAsync(string taskId, string name);

    /// <summary>The statistics, at a cost that does not grow with the number of tasks; task counts cover <paramref name="tenants"/>.</summary>
    Task<StatsSnapshot> ReadStatsAsync(IReadOnlyList<string> tenants);
}

/// <param name="Model">Only the tasks that name this model (null: any).</param>
public sealed record TaskQuery(IReadOnlyList<string> Statuses, IReadOnlyList<string> Types, int Limit, string? Cursor,
    IReadOnlyList<string>? Tenants = null, string? Model = null);

public sealed record TaskPage(IReadOnlyList<TaskRecord> Items, string? NextCursor);

/// <summary>One event of a task's stream: its id (its place in the stream), kind, attempt and JSON data.</summary>
public sealed record TaskEvent(string Id, string Kind, int Attempt, string DataJson);

/// <summary>A duration histogram: counts per bucket of <see cref="Histogram.BoundsMs"/> (plus the open last one), the count and the sum (ms).</summary>
public sealed record HistogramData(IReadOnlyList<long> Buckets, long Count, long SumMs);

/// <summary>
/// The statistics as stored: task counts (status, type, n) for the tenants asked, queue depths,
/// paused types, all-time totals (<c>{type}:{status}</c>, <c>{type}:submitted</c>), the finishes of
/// each of the last 15 minutes (newest first, the current one partial), and histograms by type.
/// </summary>
public sealed record StatsSnapshot(
    IReadOnlyList<(string Status, string Type, long Count)> Counts,
    IReadOnlyDictionary<string, long> QueueDepths,
    IReadOnlySet<string> Paused,
    IReadOnlyDictionary<string, long> Totals,
    IReadOnlyList<IReadOnlyDictionary<string, long>> Minutes,
    IReadOnlyDictionary<string, HistogramData> Wait,
    IReadOnlyDictionary<string, HistogramData> Run);
