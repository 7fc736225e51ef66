using System.Collections.Concurrent;
using StackExchange.Redis;

namespace TaskManager.Api.Storage;

/// <summary>
/// Wakes a worker's waiting heartbeat when one of its tasks must stop. The cancel and deadline
/// scripts publish the worker's id on the cancels channel, so whichever API replica holds that
/// worker's heartbeat hears it, and the worker learns within milliseconds instead of at its next
/// heartbeat.
/// </summary>
public sealed class CancelSignals(IConnectionMultiplexer redis, RedisKeys keys) : IHostedService
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> waiting = new(StringComparer.Ordinal);
    private Action<RedisChannel, RedisValue>? handler;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // A handler rather than a ChannelMessageQueue, as in LeaseNotifier: no order is needed.
        handler = (_, message) =>
        {
            if (waiting.TryGetValue((string)message!, out var signal))
            {
                signal.TrySetResult();
            }
        };
        await redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(keys.CancelChannel), handler).ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (handler is not null)
        {
            await redis.GetSubscriber().UnsubscribeAsync(RedisChannel.Literal(keys.CancelChannel), handler).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Listens for <paramref name="workerId"/>. Listen before reading the worker's tasks, then
    /// wait: a cancel published in between is not missed.
    /// </summary>
    public Listener Listen(string workerId)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        waiting[workerId] = signal;
        return new Listener(this, workerId, signal);
    }

    public sealed class Listener(CancelSignals owner, string workerId, TaskCompletionSource signal) : IDisposable
    {
        /// <summary>True when signalled, false when the time ran out.</summary>
        public async Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            // Most waits end by timing out: a heartbeat with nothing to stop.
            return await LongPoll.WaitAsync(signal.Task, timeout, cancellationToken).ConfigureAwait(false);
        }

        public void Dispose() => owner.waiting.TryRemove(new KeyValuePair<string, TaskCompletionSource>(workerId, signal));
    }
}
