using Microsoft.AspNetCore.Http.HttpResults;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>The RFC 9457 ProblemDetails that the endpoints answer with.</summary>
public static class Problems
{
    public static ProblemHttpResult TaskNotFound(string id) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Task not found.",
            detail: $"There is no task '{id}'.");

    public static ProblemHttpResult WorkerNotFound(string id) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Worker not found.",
            detail: $"There is no worker '{id}'; register again.");

    public static ProblemHttpResult TenantNotFound(string tenant) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Tenant not found.",
            detail: $"There is no tenant '{tenant}': no client key is configured for it.");

    /// <summary>A 400 naming one bad field, shaped like a ValidationProblem.</summary>
    public static ProblemHttpResult Invalid(string field, string message) =>
        TypedResults.Problem(new HttpValidationProblemDetails(new Dictionary<string, string[]> { [field] = [message] })
        {
            Status = StatusCodes.Status400BadRequest,
            Title = "The request is not valid.",
        });

    public static ProblemHttpResult Conflict(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The task's state does not allow this.", detail: detail);

    /// <summary>Maps a failed storage outcome to 404 or 409.</summary>
    public static ProblemHttpResult From(StoreOutcome outcome, string taskId, string action) => outcome.Error switch
    {
        StoreError.NotFound => TaskNotFound(taskId),
        StoreError.StaleLease => TypedResults.Problem(statusCode: StatusCodes.Status409Conflict,
            title: "The lease is no longer current.",
            detail: $"Task '{taskId}' is {outcome.Status} and this report's lease token is not its current attempt's; the report changed nothing. Stop running the task."),
        _ => Conflict($"Task '{taskId}' is {outcome.Status}; it cannot be {action}."),
    };
}
