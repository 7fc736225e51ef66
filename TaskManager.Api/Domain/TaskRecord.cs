namespace TaskManager.Api.Domain;

/// <summary>A task as stored. JSON-valued fields are kept as the JSON text they arrived as.</summary>
public sealed record TaskRecord
{
    public required string Id { get; init; }
    public required string Type { get; init; }
    public required string Status { get; init; }
    public string Tenant { get; init; } = "default";
    public string? Model { get; init; }
    public int Priority { get; init; }
    public required string InputJson { get; init; }
    public string? OutputJson { get; init; }
    public string? ErrorJson { get; init; }
    public double? Progress { get; init; }
    public string? ProgressMessage { get; init; }
    public int Attempt { get; init; }
    public int MaxAttempts { get; init; }
    public string? WorkerId { get; init; }
    public long? QueuePosition { get; init; }
    public int TimeoutSeconds { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }
    public string? MetadataJson { get; init; }
    public string? Webhook { get; init; }

    /// <summary>The events the webhook is sent for (null without a webhook).</summary>
    public IReadOnlyList<string>? WebhookEvents { get; init; }

    /// <summary>How long after its creation (or a client's retry) the task may wait to start before it expires.</summary>
    public int? StartDeadlineSeconds { get; init; }
    public DateTimeOffset? RetryAt { get; init; }
    public TaskRequirements? Requirements { get; init; }

    /// <summary>Why no live worker takes this queued task now; null when one could (read by GET only).</summary>
    public string? WaitingReason { get; init; }

    /// <summary>The ended attempts, each a JSON object (attempt, worker_id, started_at, ended_at, outcome, error); null when not read.</summary>
    public IReadOnlyList<string>? AttemptsJson { get; init; }

    /// <summary>Time from creation to the start of the current (or last) attempt.</summary>
    public long? WaitMs => StartedAt is { } started ? (long)(started - CreatedAt).TotalMilliseconds : null;

    /// <summary>Run time of the current (or last) attempt, when it has ended.</summary>
    public long? RunMs => StartedAt is { } started && CompletedAt is { } completed
        ? (long)(completed - started).TotalMilliseconds
        : null;
}

/// <summary>An attempt a worker's report ended: for metrics and the execution span.</summary>
public sealed record EndedAttempt(int Number, DateTimeOffset? StartedAt, string? WorkerId, string? TraceParent);

/// <summary>A task handed to a worker by a lease.</summary>
public sealed record LeasedTask(
    string TaskId,
    string LeaseToken,
    string Type,
    string? Model,
    string InputJson,
    string? MetadataJson,
    int Attempt,
    int MaxAttempts,
    int TimeoutSeconds,
    DateTimeOffset DeadlineAt,
    string? TraceParent,
    long WaitMs = 0);

/// <summary>Outcome codes of storage operations, mapped by the endpoints to HTTP statuses.</summary>
public enum StoreError
{
    None,
    /// <summary>No such task or worker (404).</summary>
    NotFound,
    /// <summary>The task's state does not allow the operation (409).</summary>
    Conflict,
    /// <summary>A worker report for an attempt that is no longer current (409).</summary>
    StaleLease,
}

/// <summary>
/// The result of a state change: an error code, or the status the task now has, with the task's
/// type and, for a worker's report, the attempt it ended.
/// </summary>
public readonly record struct StoreOutcome(StoreError Error, string? Status, string? Type = null, EndedAttempt? Attempt = null)
{
    public bool Ok => Error == StoreError.None;
}

/// <summary>How the queue orders waiting tasks: higher priority first, then older first.</summary>
public static class QueueOrder
{
    /// <summary>2024-01-01T00:00:00Z in Unix milliseconds: ages are counted from here.</summary>
    private const long EpochMs = 1_704_067_200_000;

    /// <summary>
    /// What one priority step is worth in the score: 10^13 ms of age (about 300 years), so priority
    /// always wins; the largest score stays below 2^53, where doubles are exact.
    /// </summary>
    public const long PriorityBand = 10_000_000_000_000;

    /// <summary>
    /// The same for the scripts: <c>PRIORITY_BAND</c> and <c>queue_score(priority, created_ms)</c>,
    /// the score (lowest is leased first) written out in whole digits. The scripts score a task when they queue it, from its
    /// priority and creation time, so the task's hash need not keep the score.
    /// </summary>
    internal static string LuaDefinitions() =>
        $"local PRIORITY_BAND = {PriorityBand}\n" +
        "local function queue_score(priority, created_ms)\n" +
        $"  return string.format('%.0f', ({TaskLimits.MaxPriority} - tonumber(priority)) * PRIORITY_BAND + (tonumber(created_ms) - {EpochMs}))\n" +
        "end\n";
}
