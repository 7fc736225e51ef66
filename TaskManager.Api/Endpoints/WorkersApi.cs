using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;
using TaskManager.Api.Storage;

namespace TaskManager.Api.Endpoints;

/// <summary>The worker protocol: register, heartbeat, lease (a long poll) and the reports.</summary>
public static class WorkersApi
{
    public const int MaxWaitSeconds = 60;

    public static RouteGroupBuilder MapWorkersApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/workers")
            .WithTags("Workers")
            .AddEndpointFilter<ValidationFilter>();

        group.MapPost("/register", Register).WithSummary("Register a worker and its capabilities");
        group.MapPost("/{workerId}/heartbeat", Heartbeat).WithSummary("Heartbeat; answers the tasks to stop");
        group.MapPost("/{workerId}/lease", Lease).WithSummary("Long poll for up to max_tasks tasks");
        group.MapPost("/{workerId}/tasks/{taskId}/progress", Progress).WithSummary("Report progress");
        group.MapPost("/{workerId}/tasks/{taskId}/complete", Complete)
            .WithMetadata(new BodySizeLimit(BodySizeLimit.Output))
            .WithSummary("Report a result");
        group.MapPost("/{workerId}/tasks/{taskId}/fail", Fail).WithSummary("Report a failed attempt");
        return group;
    }

    private static async Task<Ok<RegisterWorkerResponse>> Register(
        RegisterWorkerRequest body, IWorkerRegistry workers, IOptions<TaskManagerOptions> options)
    {
        var capabilities = JsonSerializer.Serialize(new
        {
            backends = body.Backends,
            models = body.Models ?? [],
            gpus = body.Gpus ?? [],
            capacity = body.Capacity ?? 1,
            version = body.Version,
        }, JsonSerializerOptions.Web);
        var id = await workers.RegisterAsync(new WorkerRegistration(body.Name!, body.TaskTypes!.Distinct().ToArray(), capabilities));
        var o = options.Value;
        return TypedResults.Ok(new RegisterWorkerResponse(id, o.HeartbeatIntervalSeconds, o.LeaseTtlSeconds, o.MaxLeaseWaitSeconds));
    }

    /// <summary>
    /// Records the heartbeat and answers the tasks to stop. With <c>wait_seconds</c>, a heartbeat
    /// with nothing to stop is held (a long poll) until one of the worker's tasks must stop or the
    /// time is up, then answered afresh: a cancel reaches the worker at once.
    /// </summary>
    private static async Task<Results<Ok<HeartbeatResponse>, ProblemHttpResult>> Heartbeat(
        string workerId,
        [FromQuery(Name = "wait_seconds")] int? waitSeconds,
        HeartbeatRequest body,
        IWorkerRegistry workers,
        CancelSignals signals,
        IOptions<TaskManagerOptions> options,
        CancellationToken aborted)
    {
        if (!Ids.IsWorkerId(workerId))
        {
            return Problems.WorkerNotFound(workerId);
        }
        if (waitSeconds is < 0 or > MaxWaitSeconds)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "The request is not valid.",
                detail: $"wait_seconds must be from 0 to {MaxWaitSeconds}.");
        }
        // Held no longer than a lease lives, or the leases it extends would lapse meanwhile.
        var wait = TimeSpan.FromSeconds(Math.Min(waitSeconds ?? 0, options.Value.LeaseTtlSeconds / 2));
        var state = JsonSerializer.Serialize(new { gpus = body.Gpus ?? [], models = body.Models ?? [] }, JsonSerializerOptions.Web);
        var running = (body.Running ?? []).Select(r => (r.TaskId!, r.LeaseToken!)).ToArray();

        using var listener = signals.Listen(workerId);
        var stop = await workers.HeartbeatAsync(workerId, state, running);
        if (stop is { Count: 0 } && wait > TimeSpan.Zero && await listener.WaitAsync(wait, aborted))
        {
            stop = await workers.HeartbeatAsync(workerId, state, running);
        }
        return stop is null ? Problems.WorkerNotFound(workerId) : TypedResults.Ok(new HeartbeatResponse(stop, Drain: false));
    }

    /// <summary>
    /// Tries a lease; when nothing fits, waits for a notification (not a polling loop) and tries
    /// again, until <c>wait_seconds</c> pass. The waiter is registered before each try, so a task
    /// queued between the try and the wait still wakes it.
    /// </summary>
    private static async Task<Results<Ok<LeaseResponse>, NoContent, ProblemHttpResult>> Lease(
        string workerId,
        [FromQuery(Name = "wait_seconds")] int? waitSeconds,
        [FromBody] LeaseRequest? body,
        ITaskQueue queue,
        LeaseNotifier notifier,
        WorkerTypesCache typesCache,
        IOptions<TaskManagerOptions> options,
        TimeProvider time,
        CancellationToken aborted)
    {
        if (!Ids.IsWorkerId(workerId))
        {
            return Problems.WorkerNotFound(workerId);
        }
        if (waitSeconds is < 0 or > MaxWaitSeconds)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "The request is not valid.",
                detail: $"wait_seconds must be from 0 to {MaxWaitSeconds}.");
        }
        var wait = TimeSpan.FromSeconds(Math.Min(waitSeconds ?? 0, options.Value.MaxLeaseWaitSeconds));
        var deadline = time.GetUtcNow() + wait;
        var maxTasks = body?.MaxTasks ?? 1;

        while (true)
        {
            using var waiter = notifier.Register(typesCache.Get(workerId));
            var result = await queue.LeaseAsync(workerId, maxTasks);
            if (result.UnknownWorker)
            {
                return Problems.WorkerNotFound(workerId);
            }
            typesCache.Set(workerId, result.WorkerTypes);
            if (result.Tasks.Count > 0)
            {
                // Work this lease left behind wakes the next waiter.
                if (result.MoreQueued)
                {
                    foreach (var type in result.WorkerTypes)
                    {
                        notifier.Notify(type);
                    }
                }
                return TypedResults.Ok(new LeaseResponse(result.Tasks.Select(LeasedTaskDto.From).ToArray()));
            }

            var remaining = deadline - time.GetUtcNow();
            if (remaining <= TimeSpan.Zero)
            {
                return TypedResults.NoContent();
            }
            var wokenFor = await waiter.WaitAsync(remaining, aborted);
            if (wokenFor is null)
            {
                return TypedResults.NoContent();
            }
            // Woken for a type this worker does not serve (its types were not known yet): pass it on.
            if (!result.WorkerTypes.Contains(wokenFor))
            {
                notifier.Notify(wokenFor);
            }
        }
    }

    private static async Task<Results<Ok<ProgressResponse>, ProblemHttpResult>> Progress(
        string workerId, string taskId, ProgressRequest body, ITaskQueue queue)
    {
        var outcome = await queue.ReportProgressAsync(taskId, body.LeaseToken!, body.Progress, body.Message);
        return outcome.Ok
            ? TypedResults.Ok(new ProgressResponse(outcome.Status == TaskState.Canceling))
            : Problems.From(outcome, taskId, "updated");
    }

    private static async Task<Results<Ok<ReportResponse>, ProblemHttpResult>> Complete(
        string workerId, string taskId, CompleteRequest body, ITaskQueue queue)
    {
        var outcome = await queue.CompleteAsync(taskId, body.LeaseToken!, body.OutputJson()!);
        return outcome.Ok ? TypedResults.Ok(new ReportResponse(outcome.Status!)) : Problems.From(outcome, taskId, "completed");
    }

    private static async Task<Results<Ok<ReportResponse>, ProblemHttpResult>> Fail(
        string workerId, string taskId, FailRequest body, ITaskQueue queue)
    {
        var kind = body.Error!.Code switch
        {
            "timeout" => FailureKind.Timeout,
            "canceled" => FailureKind.Canceled,
            "worker_shutdown" => FailureKind.HandedBack,
            _ => FailureKind.Error,
        };
        var error = JsonSerializer.Serialize(new { code = body.Error.Code, message = body.Error.Message ?? "" });
        var outcome = await queue.FailAsync(taskId, body.LeaseToken!, error, body.Retryable ?? false, kind);
        return outcome.Ok ? TypedResults.Ok(new ReportResponse(outcome.Status!)) : Problems.From(outcome, taskId, "failed");
    }
}

/// <summary>
/// The task types each worker serves, learnt from its leases, so that a waiting lease is woken
/// only for work it can take. Unknown workers wait on every type until their first lease.
/// </summary>
public sealed class WorkerTypesCache
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, IReadOnlyList<string>> types = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Get(string workerId) => types.TryGetValue(workerId, out var t) ? t : TaskTypes.All;

    public void Set(string workerId, IReadOnlyList<string> workerTypes) => types[workerId] = workerTypes;
}
