using System.Collections.Concurrent;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Coordination;

/// <summary>
/// Wakes a worker's held heartbeat when one of its tasks must stop, or it has news. The store
/// signals the worker's id in the call that cancels its task, times it out, drains it or gives it
/// a task while its heartbeat is held (<see cref="ITaskSignals.OnWorkerSignalAsync"/>), so
/// whichever API replica holds that heartbeat hears it, and the worker learns within milliseconds
/// instead of at its next heartbeat.
/// </summary>
public sealed class CancelSignals(ITaskSignals signals, LongPoll longPoll) : IHostedService
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> waiting = new(StringComparer.Ordinal);
    private readonly LongPoll poll = longPoll;
    private IAsyncDisposable? subscription;

    public async Task StartAsync(CancellationToken cancellationToken) =>
        subscription = await signals.OnWorkerSignalAsync(workerId =>
        {
            if (waiting.TryGetValue(workerId, out var signal))
            {
                signal.TrySetResult();
            }
        }).ConfigureAwait(false);

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (subscription is not null)
        {
            await subscription.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Listens for <paramref name="workerId"/>. Listen before reading the worker's tasks, then
    /// wait: a signal raised in between is not missed.
    /// </summary>
    public Listener Listen(string workerId)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        waiting[workerId] = signal;
        return new Listener(this, workerId, signal);
    }

    public sealed class Listener(CancelSignals owner, string workerId, TaskCompletionSource signal) : IDisposable
    {
        /// <summary>True when signalled, false when the time ran out (as most waits end: a heartbeat with nothing to stop).</summary>
        public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
            owner.poll.WaitAsync(signal.Task, timeout, cancellationToken);

        public void Dispose() => owner.waiting.TryRemove(new KeyValuePair<string, TaskCompletionSource>(workerId, signal));
    }
}
