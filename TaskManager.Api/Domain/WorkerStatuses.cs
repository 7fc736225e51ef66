namespace TaskManager.Api.Domain;

/// <summary>
/// A worker's status, derived from its last heartbeat, never stored: healthy until
/// <c>WorkerStaleSeconds</c> of silence, then stale, dead after <c>WorkerDeadSeconds</c>. A
/// draining worker that still answers is draining.
/// </summary>
public static class WorkerStatuses
{
    public const string Healthy = "healthy";
    public const string Stale = "stale";
    public const string Dead = "dead";
    public const string Draining = "draining";

    public static readonly IReadOnlyList<string> All = [Healthy, Stale, Dead, Draining];

    /// <summary>The most workers a view of the fleet lists; dead ones drop out after <c>DeadWorkerRetentionMinutes</c>.</summary>
    public const int MaxListed = 10_000;

    public static string Of(WorkerRecord worker, DateTimeOffset now, TaskManagerOptions options)
    {
        var silent = now - worker.LastSeen;
        if (silent > TimeSpan.FromSeconds(options.WorkerDeadSeconds))
        {
            return Dead;
        }
        if (worker.Draining)
        {
            return Draining;
        }
        return silent > TimeSpan.FromSeconds(options.WorkerStaleSeconds) ? Stale : Healthy;
    }
}
