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
    private ChannelMessageQueue? subscription;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        subscription = await redis.GetSubscriber()
            .SubscribeAsync(RedisChannel.Literal(keys.CancelChannel)).ConfigureAwait(false);
        subscription.OnMessage(message =>
        {
            if (waiting.TryGetValue((string)message.Message!, out var signal))
            {
                signal.TrySetResult();
            }
            return Task.CompletedTask;
        });
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (subscription is not null)
        {
            await subscription.UnsubscribeAsync().ConfigureAwait(false);
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
