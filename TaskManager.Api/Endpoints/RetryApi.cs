using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using TaskManager.Api.Domain;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// Running ended tasks again: a client's own one at a time, an admin's in bulk. A retried task goes
/// back to queued with a fresh attempt budget; its attempt history is kept.
/// </summary>
public static class RetryApi
{
    /// <summary>What a bulk retry takes when it names no status: the failures, not the cancels a client asked for.</summary>
    public static readonly IReadOnlyList<string> DefaultBulkStatuses = [TaskState.Failed, TaskState.TimedOut, TaskState.Expired];

    private static readonly HashSet<string> BulkFields = ["status", "type", "tenant", "since"];

    public static void MapRetryApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/tasks/{id}/retry", Retry).WithTags("Tasks")
            .RequireAuthorization(Policies.Client)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit)
            .WithSummary("Run an ended task again")
            .WithDescription("From failed, timed_out, canceled or expired: queued again with a fresh attempt budget, its attempt history kept. 409 from any other state.");
        app.MapPost("/api/admin/tasks/retry", RetryMany).WithTags("Admin")
            .RequireAuthorization(Policies.Admin)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit)
            .Accepts<BulkRetryDoc>("application/json")
            .WithSummary("Run ended tasks again in bulk")
            .WithDescription("Every ended task matching status (default failed, timed_out and expired), type, tenant and since (when it ended); answers how many were queued again.");
    }

    private static async Task<Results<Accepted<TaskDto>, ProblemHttpResult>> Retry(
        string id, ClaimsPrincipal user, HttpRequest request, ITaskQueue queue, ITaskInspector inspector)
    {
        if (!TaskIds.IsTaskId(id))
        {
            return Problems.TaskNotFound(id);
        }
        var outcome = await queue.RetryAsync(id, user.Tenant());
        if (!outcome.Ok)
        {
            return Problems.From(outcome, id, $"retried (only {string.Join(", ", TaskState.Retryable)} tasks can be)");
        }
        var task = await inspector.GetAsync(id);
        return task is null ? Problems.TaskNotFound(id) : TasksApi.Created(task, request);
    }

    private static async Task<Results<Ok<BulkRetryDto>, ProblemHttpResult>> RetryMany(HttpContext context, IQueueControl control)
    {
        var (filter, problems) = await ReadFilterAsync(context);
        if (filter is null)
        {
            return TypedResults.Problem(new HttpValidationProblemDetails(problems)
            {
                Status = StatusCodes.Status400BadRequest,
                Title = "The request is not valid.",
            });
        }
        return TypedResults.Ok(new BulkRetryDto(await control.RetryEndedAsync(filter)));
    }

    /// <summary>The bulk filter from the body (empty: the defaults), or what is wrong with it.</summary>
    private static async Task<(RetryFilter? Filter, Dictionary<string, string[]> Problems)> ReadFilterAsync(HttpContext context)
    {
        var problems = new Dictionary<string, string[]>();
        JsonElement root;
        try
        {
            root = context.Request.ContentLength == 0 || (context.Request.ContentLength is null && !context.Request.Headers.TransferEncoding.Any())
                ? JsonDocument.Parse("{}").RootElement
                : (await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted)).RootElement;
        }
        catch (JsonException ex)
        {
            problems["$"] = [$"The body is not valid JSON: {ex.Message}"];
            return (null, problems);
        }
        if (root.ValueKind != JsonValueKind.Object)
        {
            problems["$"] = ["must be an object with status, type, tenant and since, each optional."];
            return (null, problems);
        }
        foreach (var unknown in root.EnumerateObject().Select(p => p.Name).Where(n => !BulkFields.Contains(n)))
        {
            problems[unknown] = [$"is not a field; use {string.Join(", ", BulkFields)}."];
        }

        var statuses = List(root, "status", problems) ?? DefaultBulkStatuses;
        foreach (var status in statuses.Where(s => !TaskState.CanRetry(s)))
        {
            problems["status"] = [$"'{status}' cannot be retried; use {string.Join(", ", TaskState.Retryable)}."];
        }
        var types = List(root, "type", problems) ?? TaskTypes.All;
        foreach (var type in types.Where(t => !TaskTypes.All.Contains(t)))
        {
            problems["type"] = [$"'{type}' is not a task type; use {string.Join(", ", TaskTypes.All)}."];
        }
        var tenants = List(root, "tenant", problems);
        var since = DateTimeOffset.UnixEpoch;
        if (root.TryGetProperty("since", out var sinceElement) && sinceElement.ValueKind != JsonValueKind.Null &&
            (sinceElement.ValueKind != JsonValueKind.String ||
             !DateTimeOffset.TryParse(sinceElement.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out since)))
        {
            problems["since"] = ["must be a time, ISO 8601 (2026-12-01T00:00:00Z)."];
        }
        return problems.Count > 0 ? (null, problems) : (new RetryFilter(statuses, types, tenants, since), problems);
    }

    /// <summary>A field given as a string (a comma list) or a list of strings; null when absent.</summary>
    private static IReadOnlyList<string>? List(JsonElement root, string name, Dictionary<string, string[]> problems)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        var items = value.ValueKind switch
        {
            JsonValueKind.String => value.GetString()!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
            JsonValueKind.Array when value.EnumerateArray().All(i => i.ValueKind == JsonValueKind.String) =>
                value.EnumerateArray().Select(i => i.GetString()!.Trim()).ToArray(),
            _ => null,
        };
        if (items is null || items.Length == 0 || items.Any(i => i.Length == 0 || i.Contains(',')))
        {
            problems[name] = ["must be a string (a comma list) or a list of strings, not empty."];
            return null;
        }
        return items.Distinct().ToArray();
    }

    public sealed record BulkRetryDto(long Retried);

    /// <summary>The shape of a bulk retry, for the OpenAPI document.</summary>
    public sealed record BulkRetryDoc(IReadOnlyList<string>? Status, IReadOnlyList<string>? Type, IReadOnlyList<string>? Tenant, DateTimeOffset? Since);
}
