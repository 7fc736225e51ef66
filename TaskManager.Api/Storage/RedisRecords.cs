using System.Globalization;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>Tasks and workers as their hashes store them (the fields: docs/architecture.md).</summary>
internal static class RedisRecords
{
    /// <summary>A task's hash, as a flat field/value list with its id (task_hash in records.lua).</summary>
    public static TaskRecord Task(RedisResult[] hash)
    {
        var f = Fields(hash);
        return new TaskRecord
        {
            Id = f["id"],
            Type = f["type"],
            Status = f["status"],
            Tenant = f.GetValueOrDefault("tenant") ?? Tenants.Default,
            Model = f.GetValueOrDefault("model"),
            Priority = Int(f, "priority") ?? TaskLimits.DefaultPriority,
            InputJson = f["input"],
            OutputJson = f.GetValueOrDefault("output"),
            ErrorJson = f.GetValueOrDefault("error"),
            Progress = f.TryGetValue("progress", out var p) ? double.Parse(p, CultureInfo.InvariantCulture) : null,
            ProgressMessage = f.GetValueOrDefault("progress_message"),
            Attempt = Int(f, "attempt") ?? 0,
            MaxAttempts = Int(f, "max_attempts") ?? TaskLimits.DefaultMaxAttempts,
            WorkerId = f.GetValueOrDefault("worker"),
            QueuePosition = Long(f, "queue_position"),
            TimeoutSeconds = Int(f, "timeout") ?? TaskLimits.DefaultTimeoutSeconds,
            CreatedAt = Time(f, "created") ?? DateTimeOffset.UnixEpoch,
            StartedAt = Time(f, "started"),
            CompletedAt = Time(f, "completed"),
            MetadataJson = f.GetValueOrDefault("metadata"),
            Webhook = f.GetValueOrDefault("webhook"),
            WebhookEvents = f.TryGetValue("webhook_events", out var events) ? Replies.Split(events) : null,
            StartDeadlineSeconds = Int(f, "start_deadline"),
            RetryAt = Time(f, "retry_at"),
            Requirements = f.ContainsKey("req_mem") || f.ContainsKey("req_gpu")
                ? new TaskRequirements(Long(f, "req_mem"), f.GetValueOrDefault("req_gpu"))
                : null,
            WaitingReason = f.GetValueOrDefault("waiting_reason"),
        };
    }

    /// <summary>A new task as its submission stored it, without reading it back.</summary>
    public static TaskRecord NewTask(string id, TaskRequest request, string tenant, long nowMs) => new()
    {
        Id = id,
        Type = request.Type,
        Status = TaskState.Queued,
        Tenant = tenant,
        Model = request.Model,
        Priority = request.Priority,
        InputJson = request.InputJson,
        MaxAttempts = request.MaxAttempts,
        TimeoutSeconds = request.TimeoutSeconds,
        CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(nowMs),
        MetadataJson = request.MetadataJson,
        Webhook = request.Webhook,
        WebhookEvents = request.WebhookEvents,
        StartDeadlineSeconds = request.StartDeadlineSeconds,
        Requirements = request.Requirements,
    };

    public static WorkerRecord Worker(RedisResult[] hash)
    {
        var f = Fields(hash);
        return new WorkerRecord(
            f["id"],
            f.GetValueOrDefault("name") ?? "",
            Replies.Split(f.GetValueOrDefault("types")),
            f.GetValueOrDefault("info") ?? "{}",
            f.GetValueOrDefault("state"),
            Int(f, "capacity") ?? 1,
            Int(f, "running") ?? 0,
            Long(f, "completed") ?? 0,
            Long(f, "failed") ?? 0,
            f.GetValueOrDefault("draining") == "1",
            Time(f, "registered") ?? DateTimeOffset.UnixEpoch,
            Time(f, "last_seen") ?? DateTimeOffset.UnixEpoch);
    }

    /// <summary>A flat field/value list as a dictionary.</summary>
    public static Dictionary<string, string> Fields(RedisResult[] hash)
    {
        var f = new Dictionary<string, string>(hash.Length / 2, StringComparer.Ordinal);
        for (var i = 0; i + 1 < hash.Length; i += 2)
        {
            f[(string)hash[i]!] = (string)hash[i + 1]!;
        }
        return f;
    }

    private static int? Int(Dictionary<string, string> f, string name) =>
        f.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : null;

    private static long? Long(Dictionary<string, string> f, string name) =>
        f.TryGetValue(name, out var v) ? long.Parse(v, CultureInfo.InvariantCulture) : null;

    private static DateTimeOffset? Time(Dictionary<string, string> f, string name) =>
        f.TryGetValue(name, out var v) ? DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(v, CultureInfo.InvariantCulture)) : null;
}
