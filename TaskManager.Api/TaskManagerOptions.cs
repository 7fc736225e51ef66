using System.ComponentModel.DataAnnotations;

namespace TaskManager.Api;

/// <summary>Settings under <c>TaskManager:</c> (environment: <c>TaskManager__*</c>).</summary>
public sealed class TaskManagerOptions
{
    public const string Section = "TaskManager";

    /// <summary><c>api</c> serves HTTP; <c>scheduler</c> runs the Hangfire server.</summary>
    [RegularExpression("^(api|scheduler)$", ErrorMessage = "TaskManager:Role must be 'api' or 'scheduler'.")]
    public string Role { get; set; } = "api";

    /// <summary>
    /// Prefix of every TaskManager key. The braces are a Redis Cluster hash tag: all keys of one
    /// deployment land in one slot, so one Lua script may touch any of them.
    /// </summary>
    [Required, RegularExpression(@"^\{[A-Za-z0-9_.-]+\}:$", ErrorMessage = "TaskManager:KeyPrefix must look like '{name}:'.")]
    public string KeyPrefix { get; set; } = "{tm}:";

    /// <summary>Hangfire's own key prefix, apart from TaskManager's.</summary>
    [Required]
    public string HangfirePrefix { get; set; } = "{tm-hangfire}:";

    /// <summary>A worker silent for longer than this loses its tasks.</summary>
    [Range(2, 3600)]
    public int LeaseTtlSeconds { get; set; } = 15;

    /// <summary>How often workers are told to heartbeat.</summary>
    [Range(1, 600)]
    public int HeartbeatIntervalSeconds { get; set; } = 5;

    /// <summary>The longest a lease long poll may wait.</summary>
    [Range(1, 300)]
    public int MaxLeaseWaitSeconds { get; set; } = 30;

    /// <summary>Largest accepted body of <c>POST /api/tasks</c>, in bytes; larger answers 413.</summary>
    [Range(1024, 256 * 1024 * 1024)]
    public long MaxTaskRequestBytes { get; set; } = 1024 * 1024;

    /// <summary>Largest accepted body of a worker report (complete carries the output), in bytes.</summary>
    [Range(1024, 1024L * 1024 * 1024)]
    public long MaxOutputBytes { get; set; } = 16 * 1024 * 1024;
}
