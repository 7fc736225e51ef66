using System.Security.Claims;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using TaskManager.Api.Coordination;
using TaskManager.Api.Domain;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// A task's live output: its event stream as server-sent events, and its binary artifacts.
/// </summary>
public static partial class TaskEventsApi
{

    public static RouteGroupBuilder MapTaskEventsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/tasks").WithTags("Tasks")
            .RequireAuthorization(Policies.Client)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit);
        group.MapGet("/{id}/events", Events)
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .WithSummary("Follow a task: status changes, progress, output chunks and log lines as server-sent events")
            .Produces(StatusCodes.Status204NoContent)
            .WithDescription("Each event has an id; reconnect with Last-Event-ID (or ?last_event_id=) to get the rest. The stream ends after the final status; "
                + "a request for what follows the final status of a task that has ended is answered 204 No Content, which tells an EventSource to stop reconnecting.");
        group.MapGet("/{id}/artifacts/{name}", Artifact).WithSummary("Download a binary output (image, audio)");
        return group;
    }

    private static async Task<Results<EmptyHttpResult, NoContent, ProblemHttpResult>> Events(
        string id, HttpContext context, ClaimsPrincipal user, ITaskInspector inspector, TaskEventSignals signals, CancellationToken aborted)
    {
        var task = await inspector.GetVisibleAsync(id, user);
        if (task is null)
        {
            return Problems.TaskNotFound(id);
        }
        var last = context.Request.Headers["Last-Event-ID"].FirstOrDefault() ?? context.Request.Query["last_event_id"].FirstOrDefault();
        if (!string.IsNullOrEmpty(last) && !EventId().IsMatch(last))
        {
            return Problems.Invalid("Last-Event-ID", "is not an event id of this stream (a whole number, like 12).");
        }
        // A task already final, asked for what follows its last event (a browser's EventSource
        // reconnects so after the stream ends): nothing will. 204 tells an EventSource to stop
        // reconnecting, and no subscription is made.
        if (!string.IsNullOrEmpty(last) && TaskState.IsFinal(task.Status) && (await inspector.ReadEventsAsync(id, last, 1)).Count == 0)
        {
            return TypedResults.NoContent();
        }

        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await using var subscription = await signals.SubscribeAsync(id);
        await response.StartAsync(aborted);

        var text = new StringBuilder();
        await foreach (var events in TaskEventFeed.FollowAsync(inspector, subscription, id, string.IsNullOrEmpty(last) ? null : last, () => TaskEventFeed.KeepAlive, aborted))
        {
            text.Clear();
            foreach (var e in events)
            {
                Format(text, e);
            }
            await response.WriteAsync(text.Length > 0 ? text.ToString() : ": keep-alive\n\n", aborted);
            await response.Body.FlushAsync(aborted);
        }
        return TypedResults.Empty;
    }

    private static async Task<Results<FileContentHttpResult, ProblemHttpResult>> Artifact(
        string id, string name, ClaimsPrincipal user, ITaskInspector inspector)
    {
        var artifact = Artifacts.IsName(name) && await inspector.GetVisibleAsync(id, user) is not null
            ? await inspector.GetArtifactAsync(id, name)
            : null;
        return artifact is { } found
            ? TypedResults.File(found.Data, found.ContentType, name)
            : TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Artifact not found.",
                detail: $"Task '{id}' has no artifact '{name}'.");
    }

    /// <summary>One SSE event: the stream id, the kind as the event name, and the data with the attempt.</summary>
    private static void Format(StringBuilder text, TaskEvent e)
    {
        text.Append("id: ").Append(e.Id).Append('\n');
        text.Append("event: ").Append(e.Kind).Append('\n');
        text.Append("data: {\"attempt\":").Append(e.Attempt);
        // The stored data is a JSON object; its members follow the attempt.
        if (e.DataJson.Length > 2)
        {
            text.Append(',').Append(e.DataJson, 1, e.DataJson.Length - 1);
        }
        else
        {
            text.Append('}');
        }
        text.Append("\n\n");
    }

    [GeneratedRegex(@"^\d{1,9}$")]
    private static partial Regex EventId();
}
