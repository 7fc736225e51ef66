using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>
/// The cross-replica wake-ups as Redis pub/sub: the scripts publish on <c>notify</c>,
/// <c>cancels</c> and <c>ev:{id}</c> in the call that moves a task, and every replica subscribed
/// hears it (on a Redis Cluster too: a publish reaches the subscribers of every node).
/// </summary>
public sealed class RedisSignals(IConnectionMultiplexer redis, RedisKeys keys) : ITaskSignals
{
    public Task<IAsyncDisposable> OnWorkQueuedAsync(Action<string, string?> handler) =>
        SubscribeAsync(keys.NotifyChannel, text =>
        {
            // 'type' or 'type|model' (notify_work in lifecycle.lua).
            var bar = text.IndexOf('|', StringComparison.Ordinal);
            handler(bar < 0 ? text : text[..bar], bar < 0 ? null : text[(bar + 1)..]);
        });

    public Task<IAsyncDisposable> OnWorkerSignalAsync(Action<string> handler) => SubscribeAsync(keys.CancelChannel, handler);

    public Task<IAsyncDisposable> OnTaskEventAsync(string taskId, Action handler) => SubscribeAsync(keys.EventChannel(taskId), _ => handler());

    // A handler rather than a ChannelMessageQueue: no signal needs an order among the others, and
    // the queue's reading loop would be one more hand-off between the publish and the waiter.
    private async Task<IAsyncDisposable> SubscribeAsync(string name, Action<string> handler)
    {
        var channel = RedisChannel.Literal(name);
        Action<RedisChannel, RedisValue> receive = (_, message) => handler((string)message!);
        var subscriber = redis.GetSubscriber();
        await subscriber.SubscribeAsync(channel, receive).ConfigureAwait(false);
        return new Subscription(subscriber, channel, receive);
    }

    private sealed class Subscription(ISubscriber subscriber, RedisChannel channel, Action<RedisChannel, RedisValue> receive) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await subscriber.UnsubscribeAsync(channel, receive).ConfigureAwait(false);
    }
}
