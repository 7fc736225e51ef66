namespace TaskManager.Api.Domain;

/// <summary>A task request that passed validation, with defaults applied.</summary>
/// <param name="InputJson">The normalised input (defaults filled in), as JSON text.</param>
/// <param name="MetadataJson">The client's metadata object as JSON text, or null.</param>
public sealed record TaskRequest(
    string Type,
    string InputJson,
    string? Model,
    int Priority,
    int TimeoutSeconds,
    int MaxAttempts,
    string? MetadataJson,
    string? Webhook,
    TaskRequirements? Requirements = null,
    int? StartDeadlineSeconds = null,
    IReadOnlyList<string>? WebhookEvents = null);

/// <summary>What a worker must offer to run a task: free GPU memory, and a GPU whose name contains a pattern.</summary>
public sealed record TaskRequirements(long? GpuMemoryMb, string? Gpu);

/// <summary>Defaults and bounds of the task fields that are not part of a type's input.</summary>
public static class TaskLimits
{
    public const int MinPriority = 0;
    public const int MaxPriority = 9;
    public const int DefaultPriority = 5;
    public const int MinTimeoutSeconds = 1;
    public const int MaxTimeoutSeconds = 86_400;
    public const int DefaultTimeoutSeconds = 300;
    public const int MinAttempts = 1;
    public const int MaxAttempts = 10;
    public const int DefaultMaxAttempts = 3;
    public const int MaxMetadataBytes = 16 * 1024;
    public const int MaxModelLength = 256;
    public const int MaxWebhookLength = 2048;
    public const int MinStartDeadlineSeconds = 1;
    public const int MaxStartDeadlineSeconds = 86_400;
    public const long MaxGpuMemoryMb = 10_000_000;
    public const int MaxGpuPatternLength = 100;
}
