using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Mvc;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>A task as the client API shows it.</summary>
public sealed record TaskDto(
    string Id,
    string Type,
    string Status,
    string? Model,
    int Priority,
    RawJson Input,
    RawJson? Output,
    RawJson? Error,
    double? Progress,
    string? ProgressMessage,
    int Attempt,
    int MaxAttempts,
    string? WorkerId,
    long? QueuePosition,
    string? WaitingReason,
    int TimeoutSeconds,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? CompletedAt,
    RawJson? Metadata,
    string? Webhook,
    IReadOnlyList<string>? WebhookEventsFilter,
    int? StartDeadlineSeconds,
    RequirementsDto? Requirements,
    DateTimeOffset? RetryAt,
    IReadOnlyList<AttemptDto>? Attempts,
    TaskMetricsDto Metrics,
    TaskUrlsDto Urls)
{
    public static TaskDto From(TaskRecord task, TaskLinks links) => new(
        task.Id,
        task.Type,
        task.Status,
        task.Model,
        task.Priority,
        new RawJson(task.InputJson),
        RawJson.From(task.OutputJson),
        RawJson.From(task.ErrorJson),
        task.Progress,
        task.ProgressMessage,
        task.Attempt,
        task.MaxAttempts,
        task.WorkerId,
        task.QueuePosition,
        task.WaitingReason,
        task.TimeoutSeconds,
        task.CreatedAt,
        task.StartedAt,
        task.CompletedAt,
        RawJson.From(task.MetadataJson),
        task.Webhook,
        task.WebhookEvents,
        task.StartDeadlineSeconds,
        task.Requirements is { } r ? new RequirementsDto(r.GpuMemoryMb, r.Gpu) : null,
        task.RetryAt,
        task.AttemptsJson?.Select(AttemptDto.FromJson).ToArray(),
        new TaskMetricsDto(task.WaitMs, task.RunMs),
        links.For(task.Id));
}

/// <summary>One ended attempt: who ran it, when, and how it ended.</summary>
public sealed record AttemptDto(int Attempt, string? WorkerId, DateTimeOffset? StartedAt, DateTimeOffset EndedAt, string Outcome, RawJson? Error)
{
    public static AttemptDto FromJson(string json)
    {
        using var document = System.Text.Json.JsonDocument.Parse(json);
        var a = document.RootElement;
        var started = a.GetProperty("started_at");
        var error = a.GetProperty("error");
        return new AttemptDto(
            a.GetProperty("attempt").GetInt32(),
            a.GetProperty("worker_id").GetString(),
            started.ValueKind == System.Text.Json.JsonValueKind.Number ? DateTimeOffset.FromUnixTimeMilliseconds(started.GetInt64()) : null,
            DateTimeOffset.FromUnixTimeMilliseconds(a.GetProperty("ended_at").GetInt64()),
            a.GetProperty("outcome").GetString()!,
            error.ValueKind == System.Text.Json.JsonValueKind.Null ? null : new RawJson(error.GetRawText()));
    }
}

public sealed record RequirementsDto(long? GpuMemoryMb, string? Gpu);

public sealed record TaskMetricsDto(long? WaitMs, long? RunMs);

public sealed record TaskUrlsDto(string Get, string Cancel, string Events);

/// <summary>
/// Where the client that asked reaches tasks: absolute URLs made of its request's scheme, host and
/// path base. Behind a trusted gateway those are the gateway's (X-Forwarded-Proto, -Host, -Prefix;
/// see <see cref="Security.TrustedProxies"/>), so a link works as the client sees the API.
/// </summary>
public readonly struct TaskLinks
{
    private readonly string root;

    private TaskLinks(string root) => this.root = root;

    /// <summary>
    /// Links for a reader with no request of its own (a webhook's receiver): under
    /// <paramref name="publicUrl"/>, the API's address as clients reach it (TaskManager:PublicUrl),
    /// else paths from the API's root.
    /// </summary>
    public static TaskLinks At(string? publicUrl) => new($"{publicUrl?.TrimEnd('/')}/api/tasks/");

    public static TaskLinks Of(HttpRequest request) => new(request.Host.HasValue
        ? $"{request.Scheme}://{request.Host.ToUriComponent()}{request.PathBase.ToUriComponent()}/api/tasks/"
        // HTTP/1.0 may name no host: a path from the root is then the best link there is.
        : $"{request.PathBase.ToUriComponent()}/api/tasks/");

    /// <summary>The task's own URL (also the Location of a created task).</summary>
    public string Task(string id) => root + id;

    public TaskUrlsDto For(string id) => new(root + id, $"{root}{id}/cancel", $"{root}{id}/events");

    /// <summary>The URL of one of the task's artifacts (its output holds them as paths from the API's root).</summary>
    public string Artifact(string id, string name) => $"{root}{id}/artifacts/{name}";
}

public sealed record TaskListDto(IReadOnlyList<TaskDto> Items, string? NextCursor);

/// <summary>The shape of a task request, for the OpenAPI document (the endpoint validates the raw JSON).</summary>
public sealed record TaskRequestDoc(
    string Type,
    Dictionary<string, object> Input,
    string? Model,
    int? Priority,
    int? TimeoutSeconds,
    int? MaxAttempts,
    Dictionary<string, object>? Metadata,
    string? Webhook,
    IReadOnlyList<string>? WebhookEventsFilter,
    int? StartDeadlineSeconds,
    RequirementsDto? Requirements);

/// <summary>The shape of a batch of task requests, for the OpenAPI document.</summary>
public sealed record TaskBatchDoc(IReadOnlyList<TaskRequestDoc> Tasks);

/// <summary>The answer to a batch: how many tasks were created and refused, and each request's fate in order.</summary>
public sealed record TaskBatchDto(int Accepted, int Refused, IReadOnlyList<BatchItemDto> Items);

/// <summary>
/// One request of a batch: <c>status</c> 202 with the created <c>task</c>, or the status it would
/// have had alone (400, 413, 429) with its <c>problem</c>.
/// </summary>
public sealed record BatchItemDto(
    int Index,
    int Status,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] TaskDto? Task,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] object? Problem)
{
    // Problem is typed object so that it is written as its runtime type: a validation problem
    // keeps its "errors".
    public static BatchItemDto Refused(int index, ProblemDetails problem) => new(index, problem.Status!.Value, null, problem);
}
