using System.Collections.Concurrent;
using StackExchange.Redis;

namespace TaskManager.Api.Storage;

/// <summary>
/// Wakes waiting lease long-polls when work arrives. Submissions publish the task type on the
/// notify channel from inside their Lua script, so every API replica hears of every task.
/// Each notification wakes one local waiter that serves the type (not all of them: a thousand
/// idle workers must not stampede Redis for one task). A waiter that leases a full hand while
/// work remains, or that was woken for nothing, passes the wake-up on.
/// </summary>
public sealed partial class LeaseNotifier(IConnectionMultiplexer redis, RedisKeys keys, ILogger<LeaseNotifier> logger)
    : IHostedService
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<Waiter>> waitersByType = new(StringComparer.Ordinal);
    private ChannelMessageQueue? subscription;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        subscription = await redis.GetSubscriber()
            .SubscribeAsync(RedisChannel.Literal(keys.NotifyChannel)).ConfigureAwait(false);
        subscription.OnMessage(message =>
        {
            Notify((string)message.Message!);
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
    /// Registers interest in <paramref name="types"/>. Register before looking for work, then
    /// wait: a task that arrives in between is not missed.
    /// </summary>
    public Waiter Register(IReadOnlyList<string> types)
    {
        var waiter = new Waiter(this, types);
        foreach (var type in types)
        {
            var queue = waitersByType.GetOrAdd(type, _ => new ConcurrentQueue<Waiter>());
            // Withdrawn waiters leave from the head, oldest first, so the queue stays as long as
            // the waiters of the last long-poll period at most.
            while (queue.TryPeek(out var head) && head.IsDone)
            {
                // Another thread may have taken the head first; a live waiter taken by mistake goes back.
                if (queue.TryDequeue(out var removed) && !removed.IsDone)
                {
                    queue.Enqueue(removed);
                    break;
                }
            }
            queue.Enqueue(waiter);
        }
        return waiter;
    }

    /// <summary>Wakes one live waiter for <paramref name="type"/>, if any.</summary>
    public void Notify(string type)
    {
        if (!waitersByType.TryGetValue(type, out var queue))
        {
            return;
        }
        // Waiters that finished or were woken through another type are dropped lazily here.
        while (queue.TryDequeue(out var waiter))
        {
            if (waiter.TryWake(type))
            {
                LogWoke(logger, type);
                return;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Trace, Message = "Woke a lease waiter for {TaskType}")]
    private static partial void LogWoke(ILogger logger, string taskType);

    /// <summary>
    /// One waiting lease, woken at most once. Disposing it withdraws it; a wake-up that raced in
    /// and was not taken through <see cref="WaitAsync"/> is passed on to another waiter, so no
    /// notification is lost to a waiter that stopped listening.
    /// </summary>
    public sealed class Waiter(LeaseNotifier owner, IReadOnlyList<string> types) : IDisposable
    {
        private readonly TaskCompletionSource<string?> woken = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool taken;

        public IReadOnlyList<string> Types { get; } = types;

        internal bool IsDone => woken.Task.IsCompleted;

        internal bool TryWake(string type) => woken.TrySetResult(type);

        /// <summary>Returns the type it was woken for, or null when the time ran out.</summary>
        public async Task<string?> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            try
            {
                var type = await woken.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
                taken = true;
                return type;
            }
            catch (TimeoutException)
            {
                return null;
            }
        }

        public void Dispose()
        {
            if (!woken.TrySetResult(null) && !taken && woken.Task.Result is { } type)
            {
                owner.Notify(type);
            }
        }
    }
}
