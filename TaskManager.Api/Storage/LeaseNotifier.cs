using StackExchange.Redis;

namespace TaskManager.Api.Storage;

/// <summary>
/// Wakes waiting lease long-polls when work arrives. Submissions publish the task type (and its
/// model, <c>type|model</c>) on the notify channel from inside their Lua script, so every API
/// replica hears of every task. Each notification wakes one local waiter: first one whose worker
/// has the task's model loaded, else one that serves the type (not all of them: a thousand idle
/// workers must not stampede Redis for one task). A waiter that leases a full hand while work
/// remains, that skips a task another worker should take, or that was woken for nothing, passes
/// the wake-up on.
/// </summary>
public sealed partial class LeaseNotifier(IConnectionMultiplexer redis, RedisKeys keys, ILogger<LeaseNotifier> logger)
    : IHostedService
{
    private readonly Lock gate = new();
    // Keys "t:{type}" and "m:{model}"; oldest waiter first.
    private readonly Dictionary<string, LinkedList<Waiter>> waiters = new(StringComparer.Ordinal);
    private Action<RedisChannel, RedisValue>? handler;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // A handler, not a ChannelMessageQueue: notifications need no order among themselves
        // (Notify takes the lock), and the queue's reading loop was one more hand-off between the
        // publish and the waiting lease.
        handler = (_, message) =>
        {
            var text = (string)message!;
            var bar = text.IndexOf('|', StringComparison.Ordinal);
            Notify(bar < 0 ? text : text[..bar], bar < 0 ? null : text[(bar + 1)..]);
        };
        await redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(keys.NotifyChannel), handler).ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (handler is not null)
        {
            await redis.GetSubscriber().UnsubscribeAsync(RedisChannel.Literal(keys.NotifyChannel), handler).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Registers interest in <paramref name="types"/> for a worker that has <paramref name="models"/>
    /// loaded. Register before looking for work, then wait: a task that arrives in between is not missed.
    /// </summary>
    public Waiter Register(IReadOnlyList<string> types, IReadOnlyList<string> models)
    {
        var waiter = new Waiter(this, types);
        lock (gate)
        {
            foreach (var key in types.Select(t => "t:" + t).Concat(models.Select(m => "m:" + m)))
            {
                if (!waiters.TryGetValue(key, out var list))
                {
                    waiters[key] = list = new LinkedList<Waiter>();
                }
                // Withdrawn waiters leave from the head, oldest first, so a list stays as long as
                // the waiters of the last long-poll period at most.
                while (list.First is { Value.IsDone: true })
                {
                    list.RemoveFirst();
                }
                list.AddLast(waiter);
            }
        }
        return waiter;
    }

    /// <summary>Wakes one live waiter for a task of <paramref name="type"/>, preferring one that has <paramref name="model"/> loaded.</summary>
    public void Notify(string type, string? model = null)
    {
        lock (gate)
        {
            if ((model is not null && WakeFirst("m:" + model, type)) || WakeFirst("t:" + type, type))
            {
                LogWoke(logger, type, model);
            }
        }
    }

    private bool WakeFirst(string key, string type)
    {
        if (!waiters.TryGetValue(key, out var list))
        {
            return false;
        }
        for (var node = list.First; node is not null;)
        {
            var next = node.Next;
            var waiter = node.Value;
            if (waiter.IsDone)
            {
                list.Remove(node);
            }
            else if (waiter.Types.Contains(type) && waiter.TryWake(type))
            {
                list.Remove(node);
                return true;
            }
            node = next;
        }
        return false;
    }

    [LoggerMessage(Level = LogLevel.Trace, Message = "Woke a lease waiter for {TaskType} (model {Model})")]
    private static partial void LogWoke(ILogger logger, string taskType, string? model);

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
            if (!await LongPoll.WaitAsync(woken.Task, timeout, cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
            taken = true;
            return woken.Task.Result;
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
