using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>The worker fleet at a glance: health and stats, one entry per worker; and the admin drain.</summary>
public static class FleetApi
{
    public static RouteGroupBuilder MapFleetApi(this IEndpointRouteBuilder app)
    {
        // Read-only fleet facts with no tenant's data: any client key may read them.
        var fleet = app.MapGroup("/api/tasks/workers").WithTags("Workers")
            .RequireAuthorization(Policies.Client)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit);
        fleet.MapGet("/health", Health).WithSummary("Each worker: healthy, stale, dead or draining, and its last heartbeat");
        fleet.MapGet("/stats", Stats).WithSummary("Each worker: capabilities, GPUs, load, completed and failed counts");

        var admin = app.MapGroup("/api/admin").WithTags("Admin")
            .RequireAuthorization(Policies.Admin)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit);
        admin.MapPost("/workers/{id}/drain", Drain)
            .WithSummary("Drain a worker: it gets no new tasks and finishes what it runs");
        return fleet;
    }

    public sealed record WorkerHealthDto(string Id, string Name, string Status, DateTimeOffset LastHeartbeat, double SecondsSinceHeartbeat, int Running);

    public sealed record FleetHealthDto(IReadOnlyDictionary<string, int> Counts, IReadOnlyList<WorkerHealthDto> Workers);

    public sealed record WorkerStatsDto(
        string Id,
        string Name,
        string Status,
        IReadOnlyList<string> TaskTypes,
        RawJson? Backends,
        RawJson Models,
        RawJson Gpus,
        int Capacity,
        int Running,
        long Completed,
        long Failed,
        string? Version,
        DateTimeOffset RegisteredAt,
        DateTimeOffset LastHeartbeat);

    public sealed record FleetStatsDto(IReadOnlyList<WorkerStatsDto> Workers);

    private static async Task<Ok<FleetHealthDto>> Health(IWorkerRegistry registry, IOptions<TaskManagerOptions> options, TimeProvider time)
    {
        var now = time.GetUtcNow();
        var workers = (await registry.ListWorkersAsync(WorkerStatuses.MaxListed)).Select(w => HealthOf(w, now, options.Value)).ToArray();
        var counts = WorkerStatuses.All.ToDictionary(s => s, s => workers.Count(w => w.Status == s));
        return TypedResults.Ok(new FleetHealthDto(counts, workers));
    }

    private static async Task<Ok<FleetStatsDto>> Stats(IWorkerRegistry registry, IOptions<TaskManagerOptions> options, TimeProvider time)
    {
        var now = time.GetUtcNow();
        var workers = (await registry.ListWorkersAsync(WorkerStatuses.MaxListed)).Select(w =>
        {
            using var info = JsonDocument.Parse(w.InfoJson);
            using var state = JsonDocument.Parse(w.StateJson ?? w.InfoJson);
            return new WorkerStatsDto(
                w.Id,
                w.Name,
                WorkerStatuses.Of(w, now, options.Value),
                w.TaskTypes,
                Member(info.RootElement, "backends"),
                Member(state.RootElement, "models") ?? new RawJson("[]"),
                Member(state.RootElement, "gpus") ?? new RawJson("[]"),
                w.Capacity,
                w.Running,
                w.Completed,
                w.Failed,
                info.RootElement.TryGetProperty("version", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null,
                w.RegisteredAt,
                w.LastSeen);
        }).ToArray();
        return TypedResults.Ok(new FleetStatsDto(workers));
    }

    private static async Task<Results<Ok<WorkerHealthDto>, ProblemHttpResult>> Drain(
        string id, IWorkerRegistry registry, IOptions<TaskManagerOptions> options, TimeProvider time)
    {
        if (!TaskIds.IsWorkerId(id) || !await registry.DrainAsync(id))
        {
            return Problems.WorkerNotFound(id);
        }
        var now = time.GetUtcNow();
        var worker = (await registry.ListWorkersAsync(WorkerStatuses.MaxListed)).FirstOrDefault(w => w.Id == id);
        return worker is null ? Problems.WorkerNotFound(id) : TypedResults.Ok(HealthOf(worker, now, options.Value));
    }

    private static WorkerHealthDto HealthOf(WorkerRecord worker, DateTimeOffset now, TaskManagerOptions options) =>
        new(worker.Id, worker.Name, WorkerStatuses.Of(worker, now, options), worker.LastSeen, Math.Round((now - worker.LastSeen).TotalSeconds, 1), worker.Running);

    /// <summary>The models a worker has loaded or declared, as it last reported them.</summary>
    internal static IReadOnlyList<string> ModelsOf(WorkerRecord worker)
    {
        using var state = JsonDocument.Parse(worker.StateJson ?? worker.InfoJson);
        return state.RootElement.ValueKind == JsonValueKind.Object && state.RootElement.TryGetProperty("models", out var models)
            && models.ValueKind == JsonValueKind.Array
            ? models.EnumerateArray().Where(m => m.ValueKind == JsonValueKind.String).Select(m => m.GetString()!).ToArray()
            : [];
    }

    private static RawJson? Member(JsonElement root, string name) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? new RawJson(value.GetRawText())
            : null;
}
