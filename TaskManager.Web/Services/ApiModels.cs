using System.Text.Json;

namespace TaskManager.Web.Services;

// The API's answers as the console reads them (docs/api.md). Only the fields the pages show;
// JSON the console passes through without understanding it (input, output, error) stays a JsonElement.

public sealed record TaskItem(
    string Id,
    string Type,
    string Status,
    string? Model,
    int Priority,
    JsonElement Input,
    JsonElement? Output,
    JsonElement? Error,
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
    JsonElement? Metadata,
    string? Webhook,
    DateTimeOffset? RetryAt,
    IReadOnlyList<TaskAttempt>? Attempts,
    TaskTimes? Metrics)
{
    public bool IsFinal => TaskStatuses.IsFinal(Status);

    /// <summary>The error's code and message, as one line.</summary>
    public string? ErrorText => Error is { ValueKind: JsonValueKind.Object } e
        ? $"{Text(e, "code")}: {Text(e, "message")}"
        : null;

    private static string? Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}

public sealed record TaskAttempt(int Attempt, string? WorkerId, DateTimeOffset? StartedAt, DateTimeOffset EndedAt, string Outcome, JsonElement? Error);

public sealed record TaskTimes(long? WaitMs, long? RunMs);

public sealed record TaskPage(IReadOnlyList<TaskItem> Items, string? NextCursor);

public sealed record Percentiles(long Count, double? MeanMs, long? P50, long? P95, long? P99);

public sealed record QueueState(long Depth, bool Paused);

public sealed record Throughput(double LastMinute, double Last5Minutes, double Last15Minutes);

public sealed record Metrics(
    IReadOnlyDictionary<string, long> ByStatus,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> ByType,
    IReadOnlyDictionary<string, QueueState> Queues,
    Throughput FinishedPerMinute,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> FinishedTotal,
    double? SuccessRate,
    IReadOnlyDictionary<string, Percentiles> WaitMs,
    IReadOnlyDictionary<string, Percentiles> RunMs,
    IReadOnlyDictionary<string, int> Workers,
    IReadOnlyDictionary<string, IReadOnlyList<long>>? FinishedByMinute);

public sealed record WorkerHealth(string Id, string Name, string Status, DateTimeOffset LastHeartbeat, double SecondsSinceHeartbeat, int Running);

public sealed record Gpu(string? Name, long? MemoryTotalMb, long? MemoryFreeMb);

public sealed record WorkerStats(
    string Id,
    string Name,
    string Status,
    IReadOnlyList<string> TaskTypes,
    IReadOnlyList<string> Models,
    IReadOnlyList<Gpu> Gpus,
    int Capacity,
    int Running,
    long Completed,
    long Failed,
    DateTimeOffset LastHeartbeat);

public sealed record FleetStats(IReadOnlyList<WorkerStats> Workers);

public sealed record DeliveryAttempt(DateTimeOffset At, int? StatusCode, double? DurationMs, string? Error);

public sealed record DeliveryList(IReadOnlyList<WebhookDelivery> Deliveries);

public sealed record WebhookDelivery(string Id, string Event, string Target, string State, DateTimeOffset CreatedAt, IReadOnlyList<DeliveryAttempt> Attempts);

/// <summary>One server-sent event of a task's stream: its id, its kind and its JSON data.</summary>
public sealed record TaskEvent(string? Id, string Kind, JsonElement Data);

/// <summary>A refusal from the API: its status, title and detail, and the bad fields of a 400.</summary>
public sealed record ApiProblem(int Status, string Title, string? Detail, IReadOnlyDictionary<string, string[]> Errors)
{
    public override string ToString() => Detail is null ? $"{Status}: {Title}" : $"{Status}: {Title} {Detail}";
}

/// <summary>What a call came to: a value, or the API's problem.</summary>
public sealed record ApiResult<T>(T? Value, ApiProblem? Problem)
{
    public bool Ok => Problem is null;
}

public static class TaskStatuses
{
    public static readonly string[] All = ["queued", "scheduled", "running", "canceling", "succeeded", "failed", "canceled", "timed_out", "expired"];

    public static readonly string[] Types = ["llm", "sd", "tts", "image_to_text"];

    public static bool IsFinal(string status) => status is "succeeded" or "failed" or "canceled" or "timed_out" or "expired";

    /// <summary>The statuses from which a task may be run again (docs/api.md, retry).</summary>
    public static bool IsRetryable(string status) => status is "failed" or "timed_out" or "canceled" or "expired";
}

/// <summary>Who a key is: <c>client</c> (of <see cref="Tenant"/>) or <c>admin</c>.</summary>
public sealed record Caller(string Role, string Tenant);
