using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Coordination;

/// <summary>
/// A worker's heartbeat as a long poll: recorded at once, and, when there is nothing to stop, held
/// until one of the worker's tasks must stop (or it has news) or the time is up, then answered
/// afresh: a cancel reaches the worker at once. It is held at most half a lease while the worker
/// runs tasks (their leases must be extended in time), and up to <c>MaxLeaseWaitSeconds</c> while
/// it runs nothing: then this replica keeps the worker alive (<see cref="IdleHeartbeats"/>), and a
/// task leased to it, or a drain, answers it at once.
/// </summary>
public sealed class WorkerHeartbeats(IWorkerRegistry workers, CancelSignals signals, IdleHeartbeats idle, IOptions<TaskManagerOptions> options)
{
    /// <summary>The heartbeat's answer; null for a worker the store does not know.</summary>
    public async Task<HeartbeatResult?> BeatAsync(string workerId, WorkerState state, IReadOnlyList<(string TaskId, string LeaseToken)> running,
        TimeSpan wait, CancellationToken aborted)
    {
        using var listener = signals.Listen(workerId);
        var holding = wait > TimeSpan.Zero;
        var beat = await workers.HeartbeatAsync(workerId, state, running, holdIfIdle: running.Count == 0 && holding);
        if (beat is not { Stop.Count: 0, Drain: false } || !holding)
        {
            return beat;
        }
        var o = options.Value;
        var hold = TimeSpan.FromSeconds(Math.Min(wait.TotalSeconds, beat.Idle ? o.MaxLeaseWaitSeconds : o.LeaseTtlSeconds / 2));
        using var held = beat.Idle ? idle.Hold(workerId) : null;
        return await listener.WaitAsync(hold, aborted) ? await workers.HeartbeatAsync(workerId, state, running) : beat;
    }
}
