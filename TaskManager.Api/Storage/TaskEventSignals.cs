using StackExchange.Redis;

namespace TaskManager.Api.Storage;

/// <summary>
/// Lets an event stream follower wait for a task's next event: once a follower has marked the
/// task followed (<see cref="ITaskInspector.ReadEventsAsync"/> with <c>follows</c>), every event
/// script publishes on the task's <c>ev:{id}</c> channel, so a follower on any API replica wakes
/// at once. A task nobody follows publishes nothing.
/// </summary>
public sealed class TaskEventSignals(IConnectionMultiplexer redis, RedisKeys keys)
{
    public async Task<Subscription> SubscribeAsync(string taskId)
    {
        var subscription = new Subscription(redis.GetSubscriber(), RedisChannel.Literal(keys.EventChannel(taskId)));
        await subscription.StartAsync().ConfigureAwait(false);
        return subscription;
    }

    /// <summary>One follower's subscription. Subscribe before reading, then wait: no event is missed in between.</summary>
    public sealed class Subscription(ISubscriber subscriber, RedisChannel channel) : IAsyncDisposable
    {
        private readonly SemaphoreSlim signal = new(0, 1);
        private Action<RedisChannel, RedisValue>? active;

        private Action<RedisChannel, RedisValue> Handler => (_, _) =>
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
        };

        internal async Task StartAsync()
        {
            active = Handler;
            await subscriber.SubscribeAsync(channel, active).ConfigureAwait(false);
        }

        /// <summary>True when an event arrived, false when the time ran out.</summary>
        public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
            signal.WaitAsync(timeout, cancellationToken);

        public async ValueTask DisposeAsync()
        {
            if (active is not null)
            {
                await subscriber.UnsubscribeAsync(channel, active).ConfigureAwait(false);
            }
            signal.Dispose();
        }
    }
}
