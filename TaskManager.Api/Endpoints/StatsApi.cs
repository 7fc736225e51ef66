using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// <c>GET /api/tasks/stats/metrics</c>: what is happening, at a glance, from counters and
/// histograms kept in Redis as tasks move; and the admin controls that pause and resume a queue.
/// </summary>
public static class StatsApi
{
    public static RouteGroupBuilder MapStatsApi(this IEndpointRouteBuilder app)
    {
        var stats = app.MapGroup("/api/tasks/stats").WithTags("Stats")
            .RequireAuthorization(Policies.Client)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit);
        stats.MapGet("/metrics", Metrics)
            .WithSummary("Counts by status and type, queue depths, throughput, wait and run time percentiles, success rate, workers by state");

        var admin = app.MapGroup("/api/admin/queues").WithTags("Admin")
            .RequireAuthorization(Policies.Admin)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit);
        admin.MapPost("/{type}/pause", (string type, IQueueControl control) => SetPaused(type, true, control))
            .WithSummary("Pause a task type's queue: tasks are accepted and wait; workers get none of that type");
        admin.MapPost("/{type}/resume", (string type, IQueueControl control) => SetPaused(type, false, control))
            .WithSummary("Resume a task type's queue");
        return stats;
    }

    public sealed record PercentilesDto(long Count, double? MeanMs, long? P50, long? P95, long? P99);

    public sealed record QueueDto(long Depth, bool Paused);

    public sealed record ThroughputDto(double LastMinute, double Last5Minutes, double Last15Minutes);

    public sealed record MetricsDto(
        IReadOnlyDictionary<string, long> ByStatus,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> ByType,
        IReadOnlyDictionary<string, QueueDto> Queues,
        ThroughputDto FinishedPerMinute,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> FinishedTotal,
        IReadOnlyDictionary<string, long> SubmittedTotal,
        double? SuccessRate,
        IReadOnlyDictionary<string, PercentilesDto> WaitMs,
        IReadOnlyDictionary<string, PercentilesDto> RunMs,
        IReadOnlyDictionary<string, int> Workers,
        IReadOnlyDictionary<string, IReadOnlyList<long>> FinishedByMinute);

    public sealed record QueueStateDto(string Type, bool Paused, bool Changed);

    private static async Task<Ok<MetricsDto>> Metrics(
        ClaimsPrincipal user, ITaskInspector inspector, IWorkerRegistry registry, Keyring keyring,
        IOptions<TaskManagerOptions> options, TimeProvider time)
    {
        // Task counts are the caller's tenant's (an admin's: every tenant's); the rest describes
        // the service, with no tenant's data in it.
        IReadOnlyList<string> tenants = user.IsAdmin()
            ? [.. keyring.Tenants, TasksApi.AdminTenant, Tenants.Default]
            : [user.Tenant()];
        var snapshot = await inspector.ReadStatsAsync(tenants.Distinct().ToArray());
        var now = time.GetUtcNow();
        var workers = (await registry.ListWorkersAsync(WorkerStatuses.MaxListed))
            .GroupBy(w => WorkerStatuses.Of(w, now, options.Value))
            .ToDictionary(g => g.Key, g => g.Count());
        return TypedResults.Ok(Build(snapshot, workers));
    }

    internal static MetricsDto Build(StatsSnapshot s, IReadOnlyDictionary<string, int> workers)
    {
        var byStatus = TaskState.All.ToDictionary(st => st, st => s.Counts.Where(c => c.Status == st).Sum(c => c.Count));
        var byType = TaskTypes.All.ToDictionary(t => t, t => (IReadOnlyDictionary<string, long>)TaskState.All
            .ToDictionary(st => st, st => s.Counts.Where(c => c.Type == t && c.Status == st).Sum(c => c.Count)));
        var queues = TaskTypes.All.ToDictionary(t => t, t => new QueueDto(s.QueueDepths.GetValueOrDefault(t), s.Paused.Contains(t)));

        double PerMinute(int minutes) => Math.Round(s.Minutes.Take(minutes).Sum(m => m.Values.Sum()) / (double)minutes, 2);
        var finished = TaskTypes.All.ToDictionary(t => t, t => (IReadOnlyDictionary<string, long>)TaskState.All.Where(TaskState.IsFinal)
            .ToDictionary(st => st, st => s.Totals.GetValueOrDefault($"{t}:{st}")));
        var submitted = TaskTypes.All.ToDictionary(t => t, t => s.Totals.GetValueOrDefault($"{t}:submitted"));
        long Total(string status) => finished.Values.Sum(f => f[status]);
        var judged = Total(TaskState.Succeeded) + Total(TaskState.Failed) + Total(TaskState.TimedOut);

        static PercentilesDto Percentiles(HistogramData h) => new(
            h.Count,
            h.Count == 0 ? null : Math.Round(h.SumMs / (double)h.Count, 1),
            Histogram.Percentile(h.Buckets, 0.50),
            Histogram.Percentile(h.Buckets, 0.95),
            Histogram.Percentile(h.Buckets, 0.99));
        var empty = new HistogramData(new long[Histogram.BoundsMs.Count + 1], 0, 0);

        return new MetricsDto(
            byStatus,
            byType,
            queues,
            new ThroughputDto(PerMinute(1), PerMinute(5), PerMinute(15)),
            finished,
            submitted,
            judged == 0 ? null : Math.Round(Total(TaskState.Succeeded) / (double)judged, 4),
            TaskTypes.All.ToDictionary(t => t, t => Percentiles(s.Wait.GetValueOrDefault(t) ?? empty)),
            TaskTypes.All.ToDictionary(t => t, t => Percentiles(s.Run.GetValueOrDefault(t) ?? empty)),
            WorkerStatuses.All.ToDictionary(st => st, st => workers.GetValueOrDefault(st)),
            TaskTypes.All.ToDictionary(t => t, t => FinishedByMinute(s, t)));
    }

    /// <summary>
    /// A type's tasks finished in each of the last 15 minutes (every tenant's, like the throughput),
    /// the oldest first and the current minute, still counting, last.
    /// </summary>
    private static IReadOnlyList<long> FinishedByMinute(StatsSnapshot s, string type)
    {
        var prefix = type + ":";
        return Enumerable.Range(0, s.Minutes.Count).Reverse()
            .Select(ago => s.Minutes[ago].Where(c => c.Key.StartsWith(prefix, StringComparison.Ordinal)).Sum(c => c.Value))
            .ToArray();
    }

    private static async Task<Results<Ok<QueueStateDto>, ProblemHttpResult>> SetPaused(string type, bool paused, IQueueControl control)
    {
        if (!TaskTypes.IsKnown(type))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "No such queue.",
                detail: $"'{type}' is not a task type; the queues are {string.Join(", ", TaskTypes.All)}.");
        }
        var changed = await control.SetPausedAsync(type, paused);
        return TypedResults.Ok(new QueueStateDto(type, paused, changed));
    }
}
