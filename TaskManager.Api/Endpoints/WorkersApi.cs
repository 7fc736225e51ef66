using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;
using TaskManager.Api.Observability;
using TaskManager.Api.Coordination;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>The worker protocol: register, heartbeat, lease (a long poll) and the reports.</summary>
public static class WorkersApi
{
    public const int MaxWaitSeconds = 60;

    public static RouteGroupBuilder MapWorkersApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/workers")
            .WithTags("Workers")
            .RequireAuthorization(Policies.Worker)
            .AddEndpointFilter<ValidationFilter>();

        group.MapPost("/register", Register).WithSummary("Register a worker and its capabilities");
        group.MapPost("/{workerId}/heartbeat", Heartbeat).WithSummary("Heartbeat; answers the tasks to stop");
        group.MapPost("/{workerId}/lease", Lease).WithSummary("Long poll for up to max_tasks tasks");
        group.MapPost("/{workerId}/tasks/{taskId}/progress", Progress).WithSummary("Report progress");
        group.MapPost("/{workerId}/progress", ProgressBatch)
            .WithSummary("Report the progress of many tasks at once")
            .WithDescription("Each report as the single progress report takes it, with its task_id; one script call for them all. "
                + "Each is answered at its place: 200 with cancel, or 404/409 with why.");
        group.MapPost("/{workerId}/tasks/{taskId}/complete", Complete)
            .WithMetadata(new BodySizeLimit(BodySizeLimit.Output))
            .WithSummary("Report a result");
        group.MapPost("/{workerId}/complete", CompleteBatch)
            .WithMetadata(new BodySizeLimit(BodySizeLimit.Output))
            .WithSummary("Report up to 100 successful results at once, and take the next tasks")
            .WithDescription("Each result is answered at its place (200 with the task's status, or 404/409 with why). " +
                "With max_tasks, up to that many tasks are leased in the same Redis round trip, without waiting.");
        group.MapPost("/{workerId}/tasks/{taskId}/fail", Fail).WithSummary("Report a failed attempt");
        group.MapPut("/{workerId}/tasks/{taskId}/artifacts/{name}", PutArtifact)
            .WithMetadata(new BodySizeLimit(BodySizeLimit.Output))
            .WithSummary("Store a binary output (image, audio) beside the task");
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
        }, WorkerJson);
        var id = await workers.RegisterAsync(new WorkerRegistration(body.Name!, body.TaskTypes!.Distinct().ToArray(), capabilities,
            body.Capacity ?? 1, WorkerStateOf(body.Gpus, body.Models)));
        var o = options.Value;
        return TypedResults.Ok(new RegisterWorkerResponse(id, o.HeartbeatIntervalSeconds, o.LeaseTtlSeconds, o.MaxLeaseWaitSeconds));
    }

    /// <summary>
    /// Records the heartbeat and answers the tasks to stop; with <c>wait_seconds</c>, a long poll
    /// (see <see cref="WorkerHeartbeats"/>).
    /// </summary>
    private static async Task<Results<Ok<HeartbeatResponse>, ProblemHttpResult>> Heartbeat(
        string workerId,
        [FromQuery(Name = "wait_seconds")] int? waitSeconds,
        HeartbeatRequest body,
        WorkerHeartbeats heartbeats,
        CancellationToken aborted)
    {
        if (!TaskIds.IsWorkerId(workerId))
        {
            return Problems.WorkerNotFound(workerId);
        }
        if (waitSeconds is < 0 or > MaxWaitSeconds)
        {
            return Problems.Invalid("wait_seconds", $"must be from 0 to {MaxWaitSeconds}.");
        }
        var running = (body.Running ?? []).Select(r => (r.TaskId!, r.LeaseToken!)).ToArray();
        var beat = await heartbeats.BeatAsync(workerId, WorkerStateOf(body.Gpus, body.Models), running,
            TimeSpan.FromSeconds(waitSeconds ?? 0), aborted);
        return beat is null ? Problems.WorkerNotFound(workerId) : TypedResults.Ok(new HeartbeatResponse(beat.Stop, beat.Drain));
    }

    /// <summary>A long poll for up to <c>max_tasks</c> tasks (see <see cref="LeaseBroker.LeaseAsync"/>); 204 when the time ran out.</summary>
    private static async Task<Results<Ok<LeaseResponse>, NoContent, ProblemHttpResult>> Lease(
        string workerId,
        [FromQuery(Name = "wait_seconds")] int? waitSeconds,
        [FromBody] LeaseRequest? body,
        LeaseBroker broker,
        IOptions<TaskManagerOptions> options,
        CancellationToken aborted)
    {
        if (!TaskIds.IsWorkerId(workerId))
        {
            return Problems.WorkerNotFound(workerId);
        }
        if (waitSeconds is < 0 or > MaxWaitSeconds)
        {
            return Problems.Invalid("wait_seconds", $"must be from 0 to {MaxWaitSeconds}.");
        }
        var wait = TimeSpan.FromSeconds(Math.Min(waitSeconds ?? 0, options.Value.MaxLeaseWaitSeconds));
        var result = await broker.LeaseAsync(workerId, body?.MaxTasks ?? 1, wait, aborted);
        if (result.UnknownWorker)
        {
            return Problems.WorkerNotFound(workerId);
        }
        return result.Tasks.Count == 0
            ? TypedResults.NoContent()
            : TypedResults.Ok(new LeaseResponse(result.Tasks.Select(LeasedTaskDto.From).ToArray()));
    }

    /// <summary>
    /// Reports many successful results at once and, with <c>max_tasks</c>, takes the next tasks in
    /// the same Redis round trip (never waiting: a worker with nothing left long-polls the lease).
    /// Each result is answered at its place; one refused (unknown task, stale lease) does not
    /// stop the others.
    /// </summary>
    private static async Task<Results<Ok<CompleteBatchResponse>, ProblemHttpResult>> CompleteBatch(
        string workerId, CompleteBatchRequest body, LeaseBroker broker, TaskTelemetry telemetry, TimeProvider time,
        ILogger<TaskTelemetry> logger)
    {
        if (!TaskIds.IsWorkerId(workerId))
        {
            return Problems.WorkerNotFound(workerId);
        }
        var results = body.Results ?? [];
        var (outcomes, lease) = await broker.CompleteManyAsync(workerId,
            results.Select(r => new CompletedTask(r.TaskId!, r.LeaseToken!, r.OutputJson()!, r.Chunks, r.Logs)).ToArray(),
            body.MaxTasks ?? 0);
        var answers = new CompleteBatchItem[results.Count];
        for (var i = 0; i < results.Count; i++)
        {
            var (r, outcome) = (results[i], outcomes[i]);
            if (outcome.Ok)
            {
                Observe(telemetry, time, r.TaskId!, workerId, outcome, "succeeded", r.StartedAt, r.EndedAt);
                TaskLog.AttemptEnded(logger, r.TaskId!, outcome.Attempt?.Number, workerId, "succeeded", outcome.Status!);
                answers[i] = new CompleteBatchItem(r.TaskId!, StatusCodes.Status200OK, outcome.Status, null);
            }
            else
            {
                var problem = Problems.From(outcome, r.TaskId!, "completed").ProblemDetails;
                answers[i] = new CompleteBatchItem(r.TaskId!, problem.Status!.Value, outcome.Status, problem.Detail);
            }
        }
        return TypedResults.Ok(new CompleteBatchResponse(answers, lease?.Tasks.Select(LeasedTaskDto.From).ToArray() ?? []));
    }

    private static async Task<Results<Created<ArtifactResponse>, ProblemHttpResult>> PutArtifact(
        string workerId, string taskId, string name, [FromQuery(Name = "lease_token")] string? leaseToken,
        HttpRequest request, ITaskQueue queue, IOptions<TaskManagerOptions> options)
    {
        if (!TaskIds.IsTaskId(taskId))
        {
            return Problems.TaskNotFound(taskId);
        }
        if (!Artifacts.IsName(name))
        {
            return Problems.Invalid("name", "must be 1 to 100 of A-Z, a-z, 0-9, '.', '_' and '-', not starting with a dot.");
        }
        if (string.IsNullOrEmpty(leaseToken))
        {
            return Problems.Invalid("lease_token", "is required.");
        }
        var contentType = Artifacts.ContentType(request.ContentType);
        if (contentType is null)
        {
            return Problems.Invalid("Content-Type", "must be a media type such as image/png or audio/wav.");
        }
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer);
        var outcome = await queue.PutArtifactAsync(taskId, leaseToken, name, contentType, buffer.ToArray());
        if (outcome.Error == StoreError.Conflict)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "The task's outputs are too large.",
                detail: $"A task's artifacts may take {options.Value.MaxOutputBytes} bytes together.");
        }
        if (!outcome.Ok)
        {
            return Problems.From(outcome, taskId, "given an artifact");
        }
        var url = Artifacts.Url(taskId, name);
        return TypedResults.Created(url, new ArtifactResponse(name, url, contentType, buffer.Length));
    }

    /// <summary>What placement reads of a worker's report: its largest free GPU memory, GPU names and models.</summary>
    private static WorkerState WorkerStateOf(IReadOnlyList<GpuInfo>? gpus, IReadOnlyList<string>? models)
    {
        gpus ??= [];
        models ??= [];
        var json = JsonSerializer.Serialize(new { gpus, models }, WorkerJson);
        return new WorkerState(
            json,
            gpus.Select(g => g.MemoryFreeMb ?? 0).DefaultIfEmpty(0).Max(),
            gpus.Select(g => g.Name ?? "").Where(n => n.Length > 0).ToArray(),
            models.Distinct().ToArray());
    }

    private static readonly JsonSerializerOptions WorkerJson = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    private static async Task<Results<Ok<ProgressResponse>, ProblemHttpResult>> Progress(
        string workerId, string taskId, ProgressRequest body, ITaskQueue queue)
    {
        var outcome = await queue.ReportProgressAsync(taskId, body.LeaseToken!, body.Progress, body.Message, body.Chunks, body.Logs);
        return outcome.Ok
            ? TypedResults.Ok(new ProgressResponse(outcome.Status == TaskState.Canceling))
            : Problems.From(outcome, taskId, "updated");
    }

    private static async Task<Results<Ok<ProgressBatchResponse>, ProblemHttpResult>> ProgressBatch(
        string workerId, ProgressBatchRequest body, ITaskQueue queue)
    {
        if (!TaskIds.IsWorkerId(workerId))
        {
            return Problems.WorkerNotFound(workerId);
        }
        var reports = body.Reports!;
        var outcomes = await queue.ReportProgressManyAsync(reports
            .Select(r => new ProgressReport(r.TaskId!, r.LeaseToken!, r.Progress, r.Message, r.Chunks, r.Logs)).ToArray());
        var answers = new ProgressBatchItem[reports.Count];
        for (var i = 0; i < reports.Count; i++)
        {
            var (id, outcome) = (reports[i].TaskId!, outcomes[i]);
            if (outcome.Ok)
            {
                answers[i] = new ProgressBatchItem(id, StatusCodes.Status200OK, outcome.Status == TaskState.Canceling, null);
            }
            else
            {
                var problem = Problems.From(outcome, id, "updated").ProblemDetails;
                answers[i] = new ProgressBatchItem(id, problem.Status!.Value, false, problem.Detail);
            }
        }
        return TypedResults.Ok(new ProgressBatchResponse(answers));
    }

    private static async Task<Results<Ok<ReportResponse>, ProblemHttpResult>> Complete(
        string workerId, string taskId, CompleteRequest body, ITaskQueue queue, TaskTelemetry telemetry, TimeProvider time,
        ILogger<TaskTelemetry> logger)
    {
        var outcome = await queue.CompleteAsync(taskId, body.LeaseToken!, body.OutputJson()!);
        if (!outcome.Ok)
        {
            return Problems.From(outcome, taskId, "completed");
        }
        Observe(telemetry, time, taskId, workerId, outcome, "succeeded", body.StartedAt, body.EndedAt);
        TaskLog.AttemptEnded(logger, taskId, outcome.Attempt?.Number, workerId, "succeeded", outcome.Status!);
        return TypedResults.Ok(new ReportResponse(outcome.Status!));
    }

    private static async Task<Results<Ok<ReportResponse>, ProblemHttpResult>> Fail(
        string workerId, string taskId, FailRequest body, ITaskQueue queue, TaskTelemetry telemetry, TimeProvider time,
        ILogger<TaskTelemetry> logger)
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
        if (!outcome.Ok)
        {
            return Problems.From(outcome, taskId, "failed");
        }
        Observe(telemetry, time, taskId, workerId, outcome, body.Error.Code!, body.StartedAt, body.EndedAt);
        TaskLog.AttemptEnded(logger, taskId, outcome.Attempt?.Number, workerId, body.Error.Code!, outcome.Status!);
        return TypedResults.Ok(new ReportResponse(outcome.Status!));
    }

    /// <summary>
    /// Metrics of an ended attempt, and its execution as a span of the task's trace: parented to
    /// the submission, with the worker's own start and end times when it sent them (else the
    /// lease's start and this report's arrival).
    /// </summary>
    private static void Observe(TaskTelemetry telemetry, TimeProvider time, string taskId, string workerId, StoreOutcome outcome,
        string result, DateTimeOffset? workerStart, DateTimeOffset? workerEnd)
    {
        var type = outcome.Type ?? "unknown";
        telemetry.Moved(type, outcome.Status!);
        var now = time.GetUtcNow();
        var start = workerStart ?? outcome.Attempt?.StartedAt ?? now;
        var end = workerEnd is { } e && e >= start ? e : now;
        telemetry.Ran(type, result, end - start);
        TaskTelemetry.RecordSpan("task.execute", outcome.Attempt?.TraceParent, start, end,
            ("task.id", taskId), ("task.type", type), ("task.attempt", outcome.Attempt?.Number), ("worker.id", workerId),
            ("task.outcome", result), ("task.status", outcome.Status));
        if (outcome.Status is TaskState.Scheduled or TaskState.Queued)
        {
            TaskTelemetry.RecordSpan("task.retry", outcome.Attempt?.TraceParent, now, now,
                ("task.id", taskId), ("task.attempt", outcome.Attempt?.Number), ("task.status", outcome.Status));
        }
    }
}
