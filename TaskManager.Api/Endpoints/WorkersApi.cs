using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;
using TaskManager.Api.Observability;
using TaskManager.Api.Security;
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
            .RequireAuthorization(Policies.Worker)
            .AddEndpointFilter<ValidationFilter>();

        group.MapPost("/register", Register).WithSummary("Register a worker and its capabilities");
        group.MapPost("/{workerId}/heartbeat", Heartbeat).WithSummary("Heartbeat; answers the tasks to stop");
        group.MapPost("/{workerId}/lease", Lease).WithSummary("Long poll for up to max_tasks tasks");
        group.MapPost("/{workerId}/tasks/{taskId}/progress", Progress).WithSummary("Report progress");
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
    /// Records the heartbeat and answers the tasks to stop. With <c>wait_seconds</c>, a heartbeat
    /// with nothing to stop is held (a long poll) until one of the worker's tasks must stop or the
    /// time is up, then answered afresh: a cancel reaches the worker at once. It is held at most
    /// half a lease while the worker runs tasks (their leases must be extended in time), and up to
    /// <c>MaxLeaseWaitSeconds</c> while it runs nothing: then the API keeps the worker alive
    /// (<see cref="IdleHeartbeats"/>), and a task leased to it, or a drain, answers it at once.
    /// </summary>
    private static async Task<Results<Ok<HeartbeatResponse>, ProblemHttpResult>> Heartbeat(
        string workerId,
        [FromQuery(Name = "wait_seconds")] int? waitSeconds,
        HeartbeatRequest body,
        IWorkerRegistry workers,
        CancelSignals signals,
        IdleHeartbeats idle,
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
        var state = WorkerStateOf(body.Gpus, body.Models);
        var running = (body.Running ?? []).Select(r => (r.TaskId!, r.LeaseToken!)).ToArray();

        using var listener = signals.Listen(workerId);
        var beat = await workers.HeartbeatAsync(workerId, state, running, holdIfIdle: running.Length == 0 && waitSeconds > 0);
        if (beat is { Stop.Count: 0, Drain: false } && waitSeconds > 0)
        {
            var o = options.Value;
            var wait = TimeSpan.FromSeconds(Math.Min(waitSeconds.Value, beat.Idle ? o.MaxLeaseWaitSeconds : o.LeaseTtlSeconds / 2));
            using var hold = beat.Idle ? idle.Hold(workerId) : null;
            if (await listener.WaitAsync(wait, aborted))
            {
                beat = await workers.HeartbeatAsync(workerId, state, running);
            }
        }
        return beat is null ? Problems.WorkerNotFound(workerId) : TypedResults.Ok(new HeartbeatResponse(beat.Stop, beat.Drain));
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
        WorkerCapabilitiesCache capabilities,
        TaskTelemetry telemetry,
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
            var (types, models) = capabilities.Get(workerId);
            using var waiter = notifier.Register(types, models, workerId, maxTasks);
            var result = await queue.LeaseAsync(workerId, maxTasks);
            if (Answer(result) is { } answer)
            {
                return answer;
            }

            var remaining = deadline - time.GetUtcNow();
            if (remaining <= TimeSpan.Zero)
            {
                return TypedResults.NoContent();
            }
            var wake = await waiter.WaitAsync(remaining, aborted);
            if (wake is null)
            {
                return TypedResults.NoContent();
            }
            // A submission on this replica leased this worker its task in its own script call.
            if (wake.Hand is not null && await wake.Hand.Answer is { } handed && Answer(handed) is { } given)
            {
                return given;
            }
            // Woken for a type this worker does not serve (its types were not known yet): pass it on.
            if (!result.WorkerTypes.Contains(wake.Type))
            {
                notifier.Notify(wake.Type);
            }
        }

        // The answer to give for a lease's result, or null to wait on.
        Results<Ok<LeaseResponse>, NoContent, ProblemHttpResult>? Answer(LeaseResult result)
        {
            if (result.UnknownWorker)
            {
                return Problems.WorkerNotFound(workerId);
            }
            Leased(workerId, result, notifier, capabilities, telemetry);
            if (result.Tasks.Count == 0)
            {
                return null;
            }
            return TypedResults.Ok(new LeaseResponse(result.Tasks.Select(LeasedTaskDto.From).ToArray()));
        }
    }

    /// <summary>What every lease does with its answer: learns the worker's types and models, wakes the
    /// workers it left tasks for, passes the wake-up on when work remains, and counts the waits.</summary>
    private static void Leased(string workerId, LeaseResult result, LeaseNotifier notifier, WorkerCapabilitiesCache capabilities,
        TaskTelemetry telemetry)
    {
        capabilities.Set(workerId, result.WorkerTypes, result.WorkerModels);
        // Tasks left for a worker that has their model loaded: wake that worker.
        foreach (var (type, model) in result.LeftForOthers)
        {
            notifier.Notify(type, model);
        }
        // Work this lease left behind wakes the next waiter.
        if (result.Tasks.Count > 0 && result.MoreQueued)
        {
            foreach (var type in result.WorkerTypes)
            {
                notifier.Notify(type);
            }
        }
        foreach (var task in result.Tasks)
        {
            telemetry.Waited(task.Type, task.WaitMs);
        }
    }

    /// <summary>
    /// Reports many successful results at once and, with <c>max_tasks</c>, takes the next tasks in
    /// the same Redis round trip (never waiting: a worker with nothing left long-polls the lease).
    /// Each result is answered at its place; one refused (unknown task, stale lease) does not
    /// stop the others.
    /// </summary>
    private static async Task<Results<Ok<CompleteBatchResponse>, ProblemHttpResult>> CompleteBatch(
        string workerId, CompleteBatchRequest body, ITaskQueue queue, LeaseNotifier notifier, WorkerCapabilitiesCache capabilities,
        TaskTelemetry telemetry, TimeProvider time, ILogger<TaskTelemetry> logger)
    {
        if (!Ids.IsWorkerId(workerId))
        {
            return Problems.WorkerNotFound(workerId);
        }
        var results = body.Results ?? [];
        var (outcomes, lease) = await queue.CompleteManyAsync(
            results.Select(r => new CompletedTask(r.TaskId!, r.LeaseToken!, r.OutputJson()!, r.Chunks, r.Logs)).ToArray(),
            body.MaxTasks is > 0 ? workerId : null, body.MaxTasks ?? 0);
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
        // The results are stored whatever the lease found; a worker the API has forgotten gets no
        // new tasks here and learns to register again from its next heartbeat.
        if (lease is { UnknownWorker: false })
        {
            Leased(workerId, lease, notifier, capabilities, telemetry);
        }
        return TypedResults.Ok(new CompleteBatchResponse(answers, lease?.Tasks.Select(LeasedTaskDto.From).ToArray() ?? []));
    }

    private static async Task<Results<Created<ArtifactResponse>, ProblemHttpResult>> PutArtifact(
        string workerId, string taskId, string name, [FromQuery(Name = "lease_token")] string? leaseToken,
        HttpRequest request, ITaskQueue queue, IOptions<TaskManagerOptions> options)
    {
        if (!Ids.IsTaskId(taskId))
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

/// <summary>
/// The task types each worker serves and the models it has loaded, learnt from its leases, so
/// that a waiting lease is woken only for work it can take, and first for its models. Unknown
/// workers wait on every type until their first lease.
/// </summary>
/// <remarks>
/// Every worker id that leases here gets an entry, and a worker that restarts registers under a new
/// id: the entries of workers that stopped leasing are dropped, so the cache stays as large as the
/// live fleet. A live worker leases at least once per <c>MaxLeaseWaitSeconds</c> (its long poll
/// ends), far inside <see cref="Forget"/>; one dropped all the same only waits on every type
/// again until its next lease.
/// </remarks>
public sealed class WorkerCapabilitiesCache(TimeProvider time)
{
    /// <summary>How long an entry lasts without a lease from its worker.</summary>
    internal static readonly TimeSpan Forget = TimeSpan.FromMinutes(10);

    /// <summary>The fewest new workers between two looks for old entries.</summary>
    internal const int MinSweepSize = 1024;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Entry> known = new(StringComparer.Ordinal);
    private readonly Lock sweeping = new();
    private int added; // new workers since the last sweep
    private int sweepAfter = MinSweepSize;

    public (IReadOnlyList<string> Types, IReadOnlyList<string> Models) Get(string workerId) =>
        known.TryGetValue(workerId, out var e) ? (e.Types, e.Models) : (TaskTypes.All, []);

    public void Set(string workerId, IReadOnlyList<string> types, IReadOnlyList<string> models)
    {
        var entry = new Entry(types, models, time.GetTimestamp());
        // A known worker (every lease but its first) is one write, as before. A sweep runs once as
        // many new workers came as the cache held after the last one (amortised; never Count on
        // this path, which takes every lock of the dictionary).
        if (known.ContainsKey(workerId) || !known.TryAdd(workerId, entry))
        {
            known[workerId] = entry;
        }
        else if (Interlocked.Increment(ref added) >= Volatile.Read(ref sweepAfter))
        {
            Sweep();
        }
    }

    private void Sweep()
    {
        lock (sweeping)
        {
            if (Volatile.Read(ref added) < sweepAfter)
            {
                return;
            }
            foreach (var (id, entry) in known)
            {
                if (time.GetElapsedTime(entry.LeasedAt) > Forget)
                {
                    known.TryRemove(new KeyValuePair<string, Entry>(id, entry));
                }
            }
            Volatile.Write(ref added, 0);
            Volatile.Write(ref sweepAfter, Math.Max(MinSweepSize, known.Count));
        }
    }

    private sealed record Entry(IReadOnlyList<string> Types, IReadOnlyList<string> Models, long LeasedAt);
}
