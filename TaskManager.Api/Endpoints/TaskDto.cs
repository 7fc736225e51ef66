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
    int TimeoutSeconds,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? CompletedAt,
    RawJson? Metadata,
    string? Webhook,
    TaskMetricsDto Metrics,
    TaskUrlsDto Urls)
{
    public static TaskDto From(TaskRecord task) => new(
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
        task.TimeoutSeconds,
        task.CreatedAt,
        task.StartedAt,
        task.CompletedAt,
        RawJson.From(task.MetadataJson),
        task.Webhook,
        new TaskMetricsDto(task.WaitMs, task.RunMs),
        TaskUrlsDto.For(task.Id));
}

public sealed record TaskMetricsDto(long? WaitMs, long? RunMs);

public sealed record TaskUrlsDto(string Get, string Cancel, string Events)
{
    public static TaskUrlsDto For(string id) => new($"/api/tasks/{id}", $"/api/tasks/{id}/cancel", $"/api/tasks/{id}/events");
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
    string? Webhook);
