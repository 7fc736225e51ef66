using System.Text.Json;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

// The worker protocol's bodies (docs/worker-protocol.md). Each validates itself; the group's
// ValidationFilter answers 400 before a handler runs.

public sealed record GpuInfo(string? Name, long? MemoryTotalMb, long? MemoryFreeMb, double? Utilization);

public sealed record RegisterWorkerRequest(
    string? Name,
    IReadOnlyList<string>? TaskTypes,
    JsonElement? Backends,
    IReadOnlyList<string>? Models,
    IReadOnlyList<GpuInfo>? Gpus,
    int? Capacity,
    string? Version) : IValidatable
{
    public const int MaxCapacity = 1024;

    public IDictionary<string, string[]> Validate()
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(Name) || Name.Length > 200)
        {
            errors["name"] = ["is required, at most 200 characters."];
        }
        if (TaskTypes is null || TaskTypes.Count == 0 || TaskTypes.Any(t => !Domain.TaskTypes.IsKnown(t)))
        {
            errors["task_types"] = [$"must list one or more of {string.Join(", ", Domain.TaskTypes.All)}."];
        }
        if (Capacity is < 1 or > MaxCapacity)
        {
            errors["capacity"] = [$"must be from 1 to {MaxCapacity}."];
        }
        if (Models is { Count: > 256 } || Models?.Any(m => string.IsNullOrEmpty(m) || m.Length > TaskLimits.MaxModelLength) == true)
        {
            errors["models"] = ["must be at most 256 model names of 1 to 256 characters."];
        }
        if (Gpus is { Count: > 64 })
        {
            errors["gpus"] = ["must list at most 64 GPUs."];
        }
        return errors;
    }
}

public sealed record RegisterWorkerResponse(string WorkerId, int HeartbeatIntervalSeconds, int LeaseTtlSeconds, int MaxWaitSeconds);

public sealed record RunningTask(string? TaskId, string? LeaseToken);

public sealed record HeartbeatRequest(IReadOnlyList<RunningTask>? Running, IReadOnlyList<GpuInfo>? Gpus, IReadOnlyList<string>? Models) : IValidatable
{
    public IDictionary<string, string[]> Validate()
    {
        var errors = new Dictionary<string, string[]>();
        if (Running is { Count: > RegisterWorkerRequest.MaxCapacity } ||
            Running?.Any(r => r is null || !TaskIds.IsTaskId(r.TaskId) || string.IsNullOrEmpty(r.LeaseToken)) == true)
        {
            errors["running"] = ["must list the running tasks, each with a task_id and its lease_token."];
        }
        return errors;
    }
}

public sealed record HeartbeatResponse(IReadOnlyList<string> Cancel, bool Drain);

public sealed record LeaseRequest(int? MaxTasks) : IValidatable
{
    public IDictionary<string, string[]> Validate() => MaxTasks is < 1 or > 100
        ? new Dictionary<string, string[]> { ["max_tasks"] = ["must be from 1 to 100."] }
        : new Dictionary<string, string[]>();
}

public sealed record LeasedTaskDto(
    string TaskId,
    string LeaseToken,
    string Type,
    string? Model,
    RawJson Input,
    RawJson? Metadata,
    int Attempt,
    int MaxAttempts,
    int TimeoutSeconds,
    DateTimeOffset DeadlineAt,
    string? Traceparent)
{
    public static LeasedTaskDto From(LeasedTask t) => new(t.TaskId, t.LeaseToken, t.Type, t.Model, new RawJson(t.InputJson),
        RawJson.From(t.MetadataJson), t.Attempt, t.MaxAttempts, t.TimeoutSeconds, t.DeadlineAt, t.TraceParent);
}

public sealed record LeaseResponse(IReadOnlyList<LeasedTaskDto> Tasks);

public sealed partial record ProgressRequest(string? LeaseToken, double? Progress, string? Message, IReadOnlyList<string>? Chunks, IReadOnlyList<string>? Logs) : IValidatable
{
    public IDictionary<string, string[]> Validate()
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrEmpty(LeaseToken))
        {
            errors["lease_token"] = ["is required."];
        }
        if (Progress is { } p && (!double.IsFinite(p) || p < 0 || p > 1))
        {
            errors["progress"] = ["must be from 0 to 1."];
        }
        if (Message is { Length: > 1000 })
        {
            errors["message"] = ["must be at most 1000 characters."];
        }
        if (Chunks is { Count: > MaxChunks } || Chunks?.Any(c => c is null || c.Length > MaxLineLength) == true)
        {
            errors["chunks"] = [$"must be at most {MaxChunks} strings of at most {MaxLineLength} characters."];
        }
        if (Logs is { Count: > MaxLogs } || Logs?.Any(l => l is null || l.Length > MaxLineLength) == true)
        {
            errors["logs"] = [$"must be at most {MaxLogs} strings of at most {MaxLineLength} characters."];
        }
        return errors;
    }
}

public sealed partial record ProgressRequest
{
    public const int MaxChunks = 1000;
    public const int MaxLogs = 100;
    public const int MaxLineLength = 4000;
}

public sealed record ProgressResponse(bool Cancel);

/// <summary>One report of <c>POST /api/workers/{id}/progress</c>: as the single progress report takes it, with the task's id.</summary>
public sealed record TaskProgress(string? TaskId, string? LeaseToken, double? Progress = null, string? Message = null,
    IReadOnlyList<string>? Chunks = null, IReadOnlyList<string>? Logs = null);

/// <param name="Reports">1 to <see cref="MaxReports"/> progress reports, each of a different task.</param>
public sealed record ProgressBatchRequest(IReadOnlyList<TaskProgress>? Reports) : IValidatable
{
    public const int MaxReports = 1000;

    public IDictionary<string, string[]> Validate() =>
        TaskBatch.Validate(Reports, "reports", MaxReports, r => r.TaskId,
            r => new ProgressRequest(r.LeaseToken, r.Progress, r.Message, r.Chunks, r.Logs).Validate());
}

/// <summary>The rules every batch of per-task items in a worker's call shares.</summary>
internal static class TaskBatch
{
    /// <summary>
    /// Checks that <paramref name="items"/> holds 1 to <paramref name="max"/> objects, each naming a
    /// different task by a well-formed id, and that each passes <paramref name="validateItem"/>;
    /// errors are keyed <c>name[i].field</c>.
    /// </summary>
    public static Dictionary<string, string[]> Validate<T>(IReadOnlyList<T?>? items, string name, int max,
        Func<T, string?> taskId, Func<T, IEnumerable<KeyValuePair<string, string[]>>> validateItem) where T : class
    {
        var errors = new Dictionary<string, string[]>();
        if (items is not { Count: > 0 } || items.Count > max)
        {
            errors[name] = [$"must hold 1 to {max} {name}."];
            return errors;
        }
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i] is not { } item)
            {
                errors[$"{name}[{i}]"] = ["must be an object."];
                continue;
            }
            if (!TaskIds.IsTaskId(taskId(item)))
            {
                errors[$"{name}[{i}].task_id"] = ["must be a task id."];
            }
            foreach (var (field, messages) in validateItem(item))
            {
                errors[$"{name}[{i}].{field}"] = messages;
            }
        }
        if (items.OfType<T>().Select(taskId).Where(id => id is not null).GroupBy(id => id).Any(g => g.Count() > 1))
        {
            errors[name] = ["must name each task once."];
        }
        return errors;
    }
}

/// <summary>A report's answer: 200 with whether to stop the task (it is being canceled), or 404/409 with why.</summary>
public sealed record ProgressBatchItem(
    string TaskId,
    int Status,
    bool Cancel,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] string? Detail);

public sealed record ProgressBatchResponse(IReadOnlyList<ProgressBatchItem> Results);

public sealed record ArtifactResponse(string Name, string Url, string ContentType, long Bytes);

/// <param name="StartedAt">When the worker started the execution, by its clock (optional, for the trace).</param>
/// <param name="EndedAt">When it ended, by its clock (optional).</param>
public sealed record CompleteRequest(string? LeaseToken, JsonElement? Output, DateTimeOffset? StartedAt = null, DateTimeOffset? EndedAt = null) : IValidatable
{
    public IDictionary<string, string[]> Validate()
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrEmpty(LeaseToken))
        {
            errors["lease_token"] = ["is required."];
        }
        if (Output is not { ValueKind: JsonValueKind.Object })
        {
            errors["output"] = ["must be an object."];
        }
        else if (OutputJson() is null)
        {
            errors["output"] = ["must be valid UTF-8 JSON."];
        }
        return errors;
    }

    /// <summary>The output as JSON text, or null when its bytes are not valid UTF-8.</summary>
    public string? OutputJson()
    {
        try
        {
            return Output?.GetRawText();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }
}

public sealed record ErrorInfo(string? Code, string? Message);

public sealed record FailRequest(string? LeaseToken, ErrorInfo? Error, bool? Retryable, DateTimeOffset? StartedAt = null, DateTimeOffset? EndedAt = null) : IValidatable
{
    public IDictionary<string, string[]> Validate()
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrEmpty(LeaseToken))
        {
            errors["lease_token"] = ["is required."];
        }
        if (Error is null || string.IsNullOrEmpty(Error.Code) || Error.Code.Length > 100 || Error.Message is { Length: > 10_000 })
        {
            errors["error"] = ["must be {code, message}: a code of 1 to 100 characters, a message of at most 10,000."];
        }
        return errors;
    }
}

public sealed record ReportResponse(string Status);

/// <summary>One result of <c>POST /api/workers/{id}/complete</c>: as the single complete takes it, with the task's id.</summary>
/// <param name="Chunks">The attempt's last output chunks, emitted before the final status (as a progress report's).</param>
/// <param name="Logs">Its last log lines, likewise.</param>
public sealed record CompletedResult(string? TaskId, string? LeaseToken, JsonElement? Output, DateTimeOffset? StartedAt = null,
    DateTimeOffset? EndedAt = null, IReadOnlyList<string>? Chunks = null, IReadOnlyList<string>? Logs = null)
{
    public string? OutputJson() => new CompleteRequest(LeaseToken, Output).OutputJson();
}

/// <param name="Results">1 to <see cref="MaxResults"/> successful results.</param>
/// <param name="MaxTasks">When set (1 to 100), the next tasks to lease in the same round trip.</param>
public sealed record CompleteBatchRequest(IReadOnlyList<CompletedResult>? Results, int? MaxTasks) : IValidatable
{
    public const int MaxResults = 100;

    public IDictionary<string, string[]> Validate()
    {
        var errors = TaskBatch.Validate(Results, "results", MaxResults, r => r.TaskId,
            r => new CompleteRequest(r.LeaseToken, r.Output).Validate()
                .Concat(new ProgressRequest(r.LeaseToken, null, null, r.Chunks, r.Logs).Validate()));
        if (MaxTasks is < 0 or > 100)
        {
            errors["max_tasks"] = ["must be from 0 to 100."];
        }
        return errors;
    }
}

/// <summary>A result's answer: 200 with the task's new status, or 404/409 with why.</summary>
public sealed record CompleteBatchItem(
    string TaskId,
    int Status,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] string? TaskStatus,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] string? Detail);

public sealed record CompleteBatchResponse(IReadOnlyList<CompleteBatchItem> Results, IReadOnlyList<LeasedTaskDto> Tasks);
