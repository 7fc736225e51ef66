using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using TaskManager.Api.Coordination;
using TaskManager.Api.Domain;
using TaskManager.Api.Observability;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>The client API: create, read, list, cancel and delete tasks.</summary>
public static class TasksApi
{
    public const int DefaultPageSize = 20;
    public const int MaxPageSize = 100;

    public static RouteGroupBuilder MapTasksApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/tasks")
            .WithTags("Tasks")
            .RequireAuthorization(Policies.Client)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit)
            .AddEndpointFilter<ValidationFilter>();

        group.MapPost("/", Submit)
            .WithPreferWait()
            .Accepts<TaskRequestDoc>("application/json")
            .WithSummary("Create a task")
            .WithDescription("Validates the request per task type, stores it and queues it. 202 means the task is in Redis.");
        group.MapPost("/batch", SubmitBatch)
            .Accepts<TaskBatchDoc>("application/json")
            .WithMetadata(new BodySizeLimit(BodySizeLimit.Batch))
            .WithSummary("Create up to 1,000 tasks at once")
            .WithDescription("Validates each task request on its own and stores the valid ones in one Redis round trip. " +
                "The answer lists, in order, each created task or the ProblemDetails of the request that was refused.");
        group.MapGet("/{id}", Get).WithPreferWait().WithSummary("Get a task");
        group.MapGet("/", List).WithSummary("List tasks, newest first, with cursor paging");
        group.MapMethods("/{id}/cancel", ["PATCH", "POST"], Cancel)
            .WithSummary("Cancel a task")
            .WithDescription("Queued or scheduled: canceled at once. Running: canceling until its worker stops it.");
        group.MapDelete("/{id}", Delete).WithSummary("Delete a task in a final state");
        return group;
    }

    public const int MaxIdempotencyKeyLength = 255;

    /// <summary>202 with the task, and its URL as the client sees it in Location.</summary>
    internal static Accepted<TaskDto> Created(TaskRecord task, HttpRequest request)
    {
        var dto = TaskDto.From(task, TaskLinks.Of(request));
        return TypedResults.Accepted(dto.Urls.Get, dto);
    }

    private static async Task<Results<Accepted<TaskDto>, ProblemHttpResult>> Submit(
        SubmitTaskBody body, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        ClaimsPrincipal user, HttpContext context, LeaseBroker broker, TaskTelemetry telemetry, ILogger<TaskTelemetry> logger)
    {
        if (idempotencyKey is not null &&
            (idempotencyKey.Length is 0 or > MaxIdempotencyKeyLength || idempotencyKey.Any(c => c < 0x21 || c > 0x7e)))
        {
            return Problems.Invalid("Idempotency-Key", $"must be 1 to {MaxIdempotencyKeyLength} visible ASCII characters.");
        }
        var result = await StoreAsync(body.Request!, user, broker, telemetry, logger, idempotencyKey);
        switch (result.Kind)
        {
            case SubmitKind.Existing:
                context.Response.Headers["Idempotent-Replayed"] = "true";
                return Created(result.Task!, context.Request);
            case SubmitKind.Mismatch:
                return TypedResults.Problem(statusCode: StatusCodes.Status422UnprocessableEntity, title: "The Idempotency-Key was used for another request.",
                    detail: "A different request was submitted under this key in the last 24 hours; use a new key for a new request.");
            case SubmitKind.Gone:
                return Problems.Conflict("The task first created under this Idempotency-Key has been deleted.");
            case SubmitKind.QueueFull:
                context.Response.Headers.RetryAfter = "5";
                return TypedResults.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many queued tasks.",
                    detail: $"This tenant has {result.QueuedCount} tasks queued, its cap; retry when some have started.");
            default:
                return Created(result.Task!, context.Request);
        }
    }

    /// <summary>
    /// Stores a valid task request for the caller, under its tenant: the submission's span (its
    /// context is stored with the task, so that the execution and what befalls the task later appear
    /// in the same trace), the hand-off to a lease waiting on this replica (from this call's own
    /// store call), the count and the log line. Also the door of the OpenAI-compatible API.
    /// </summary>
    internal static async Task<SubmitResult> StoreAsync(TaskRequest request, ClaimsPrincipal user, LeaseBroker broker, TaskTelemetry telemetry,
        ILogger logger, string? idempotencyKey = null)
    {
        using var span = TaskTelemetry.Source.StartActivity("task.submit");
        span?.SetTag("task.type", request.Type);
        var result = await broker.SubmitAsync(request, span?.Id ?? SubmitTaskBody.TraceParent(), SubmitterTenant(user),
            idempotencyKey, idempotencyKey is null ? null : Fingerprint(request));
        span?.SetTag("task.id", result.Task?.Id);
        if (result.Kind == SubmitKind.Created)
        {
            telemetry.Submitted(request.Type);
            TaskLog.Submitted(logger, result.Id, request.Type, result.Task!.Tenant);
        }
        return result;
    }

    private static async Task<Results<Ok<TaskBatchDto>, ProblemHttpResult>> SubmitBatch(
        SubmitBatchBody body, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        ClaimsPrincipal user, HttpRequest httpRequest, ITaskQueue queue, TaskTelemetry telemetry)
    {
        if (idempotencyKey is not null)
        {
            return Problems.Invalid("Idempotency-Key", "is not taken by batches; submit the tasks one at a time to make each idempotent.");
        }
        var links = TaskLinks.Of(httpRequest);
        var entries = body.Entries;
        using var span = TaskTelemetry.Source.StartActivity("task.submit_batch");
        span?.SetTag("batch.size", entries.Count);
        var valid = entries.Where(e => e.Request is not null).Select(e => e.Request!).ToArray();
        var stored = await queue.SubmitBatchAsync(valid, span?.Id ?? SubmitTaskBody.TraceParent(), SubmitterTenant(user));

        var items = new BatchItemDto[entries.Count];
        var next = 0;
        var accepted = 0;
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            if (entry.Request is null)
            {
                items[i] = entry.TooLarge is not null
                    ? BatchItemDto.Refused(i, new ProblemDetails { Status = StatusCodes.Status413PayloadTooLarge, Title = "The task request is too large.", Detail = entry.TooLarge })
                    : BatchItemDto.Refused(i, new HttpValidationProblemDetails(entry.Problems!) { Status = StatusCodes.Status400BadRequest, Title = "The request is not valid." });
                continue;
            }
            var result = stored[next++];
            if (result.Kind == SubmitKind.Created)
            {
                accepted++;
                telemetry.Submitted(result.Task!.Type);
                items[i] = new BatchItemDto(i, StatusCodes.Status202Accepted, TaskDto.From(result.Task, links), null);
            }
            else
            {
                items[i] = BatchItemDto.Refused(i, new ProblemDetails
                {
                    Status = StatusCodes.Status429TooManyRequests,
                    Title = "Too many queued tasks.",
                    Detail = $"This tenant has reached its cap of {result.QueuedCount} queued tasks; retry when some have started.",
                });
            }
        }
        span?.SetTag("batch.accepted", accepted);
        return TypedResults.Ok(new TaskBatchDto(accepted, entries.Count - accepted, items));
    }

    private static async Task<Results<Ok<TaskDto>, ProblemHttpResult>> Get(string id, ClaimsPrincipal user, HttpRequest request, ITaskInspector inspector)
    {
        var task = await inspector.GetVisibleAsync(id, user);
        return task is null ? Problems.TaskNotFound(id) : TypedResults.Ok(TaskDto.From(task, TaskLinks.Of(request)));
    }

    private static async Task<Ok<TaskListDto>> List(ListQuery query, ClaimsPrincipal user, HttpRequest request, ITaskInspector inspector, Keyring keyring)
    {
        IReadOnlyList<string> tenants = !user.IsAdmin() ? [user.Tenant()]
            : !string.IsNullOrEmpty(query.Tenant) ? [query.Tenant]
            : [.. keyring.Tenants, AdminTenant, Tenants.Default];
        var page = await inspector.ListAsync(query.ToTaskQuery() with { Tenants = tenants.Distinct().ToArray() });
        var links = TaskLinks.Of(request);
        return TypedResults.Ok(new TaskListDto(page.Items.Select(t => TaskDto.From(t, links)).ToArray(), page.NextCursor));
    }

    private static async Task<Results<Accepted<TaskDto>, ProblemHttpResult>> Cancel(
        string id, ClaimsPrincipal user, HttpRequest request, ITaskQueue queue, ITaskInspector inspector, TaskTelemetry telemetry)
    {
        if (!TaskIds.IsTaskId(id))
        {
            return Problems.TaskNotFound(id);
        }
        var outcome = await queue.CancelAsync(id, user.Tenant());
        if (!outcome.Ok)
        {
            return Problems.From(outcome, id, "canceled");
        }
        if (outcome.Status == TaskState.Canceled)
        {
            telemetry.Moved(outcome.Type!, outcome.Status);
        }
        var task = await inspector.GetAsync(id);
        return task is null ? Problems.TaskNotFound(id) : Created(task, request);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, ClaimsPrincipal user, ITaskQueue queue)
    {
        if (!TaskIds.IsTaskId(id))
        {
            return Problems.TaskNotFound(id);
        }
        var outcome = await queue.DeleteAsync(id, user.Tenant());
        return outcome.Ok ? TypedResults.NoContent() : Problems.From(outcome, id, "deleted until it is final");
    }

    /// <summary>The tenant a task is stored under: the client's, or "admin" for an admin's own tasks.</summary>
    public const string AdminTenant = "admin";

    internal static string SubmitterTenant(ClaimsPrincipal user) => user.IsAdmin() ? AdminTenant : user.Tenant();

    /// <summary>What identifies a request for its Idempotency-Key: the validated request with its defaults, so whitespace and key order do not matter.</summary>
    private static string Fingerprint(TaskRequest request) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(request))));

    /// <summary>Query of <c>GET /api/tasks</c>: <c>status</c> and <c>type</c> take comma lists.</summary>
    public sealed class ListQuery : IValidatable
    {
        public string? Status { get; init; }
        public string? Type { get; init; }
        public string? Limit { get; init; }
        public string? Cursor { get; init; }

        /// <summary>Only the tasks that name this model.</summary>
        public string? Model { get; init; }

        /// <summary>Admins only: one tenant's tasks (else every tenant's).</summary>
        public string? Tenant { get; init; }

        public static ValueTask<ListQuery?> BindAsync(HttpContext context)
        {
            var q = context.Request.Query;
            return ValueTask.FromResult<ListQuery?>(new ListQuery
            {
                Status = q["status"].ToString(),
                Type = q["type"].ToString(),
                Limit = q["limit"].ToString(),
                Cursor = q["cursor"].ToString(),
                Tenant = q["tenant"].ToString(),
                Model = q["model"].ToString(),
            });
        }

        public IDictionary<string, string[]> Validate()
        {
            var errors = new Dictionary<string, string[]>();
            if (Split(Status).FirstOrDefault(s => !TaskState.IsKnown(s)) is { } badStatus)
            {
                errors["status"] = [$"'{badStatus}' is not a status; use {string.Join(", ", TaskState.All)}."];
            }
            if (Split(Type).FirstOrDefault(t => !TaskTypes.IsKnown(t)) is { } badType)
            {
                errors["type"] = [$"'{badType}' is not a task type; use {string.Join(", ", TaskTypes.All)}."];
            }
            if (!string.IsNullOrEmpty(Limit) && (!int.TryParse(Limit, out var limit) || limit is < 1 or > MaxPageSize))
            {
                errors["limit"] = [$"must be a whole number from 1 to {MaxPageSize}."];
            }
            if (!string.IsNullOrEmpty(Cursor) && !TaskIds.IsTaskId(Cursor))
            {
                errors["cursor"] = ["is not a cursor this API returned."];
            }
            if (Model is { Length: > TaskLimits.MaxModelLength })
            {
                errors["model"] = [$"must be at most {TaskLimits.MaxModelLength} characters."];
            }
            return errors;
        }

        public TaskQuery ToTaskQuery()
        {
            var statuses = Split(Status);
            var types = Split(Type);
            return new TaskQuery(
                statuses.Length > 0 ? statuses : TaskState.All,
                types.Length > 0 ? types : TaskTypes.All,
                string.IsNullOrEmpty(Limit) ? DefaultPageSize : int.Parse(Limit),
                string.IsNullOrEmpty(Cursor) ? null : Cursor,
                Model: string.IsNullOrEmpty(Model) ? null : Model);
        }

        private static string[] Split(string? list) =>
            string.IsNullOrEmpty(list) ? [] : list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToArray();
    }
}
