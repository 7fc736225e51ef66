using TaskManager.Api.Domain;

namespace TaskManager.Api.Coordination;

/// <summary>
/// Lets an event stream follower wait for a task's next event: once a follower has marked the
/// task followed (<see cref="ITaskInspector.ReadEventsAsync"/> with <c>follows</c>), every event
/// of the task is signalled (<see cref="ITaskSignals.OnTaskEventAsync"/>), so a follower on any
/// API replica wakes at once. A task nobody follows signals nothing.
/// </summary>
public sealed class TaskEventSignals(ITaskSignals signals)
{
    /// <summary>Subscribe before reading, then wait: no event is missed in between.</summary>
    public async Task<Subscription> SubscribeAsync(string taskId)
    {
        var subscription = new Subscription();
        subscription.Source = await signals.OnTaskEventAsync(taskId, subscription.Signal).ConfigureAwait(false);
        return subscription;
    }

    /// <summary>One follower's subscription.</summary>
    public sealed class Subscription : IAsyncDisposable
    {
        private readonly SemaphoreSlim signal = new(0, 1);

        internal IAsyncDisposable? Source { get; set; }

        internal void Signal()
        {
            // One pending signal is enough: the follower reads everything new when it wakes.
            if (signal.CurrentCount == 0)
            {
                try
                {
                    signal.Release();
                }
                catch (SemaphoreFullException)
                {
                    // Another event signalled first.
                }
            }
        }

        /// <summary>True when an event arrived, false when the time ran out.</summary>
        public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
            signal.WaitAsync(timeout, cancellationToken);

        public async ValueTask DisposeAsync()
        {
            if (Source is not null)
            {
                await Source.DisposeAsync().ConfigureAwait(false);
            }
            signal.Dispose();
        }
    }
}
