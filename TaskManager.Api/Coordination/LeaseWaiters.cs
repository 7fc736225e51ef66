using TaskManager.Api.Domain;

namespace TaskManager.Api.Coordination;

/// <summary>
/// The leases waiting on this replica for work, woken when work arrives. The store signals the
/// type (and model) of each task queued, in the call that queues it, so every API replica hears
/// of every task (<see cref="ITaskSignals.OnWorkQueuedAsync"/>). Each notification wakes one
/// local waiter: first one whose worker has the task's model loaded, else one that serves the
/// type (not all of them: a thousand idle workers must not stampede the store for one task). A waiter that leases a full hand while work
/// remains, that skips a task another worker should take, or that was woken for nothing, passes
/// the wake-up on.
/// </summary>
/// <remarks>
/// A submission on this replica does better than a notification: it <see cref="Claim"/>s a lease
/// that is waiting here and leases the task to that worker in its own store call. The lease's
/// answer then comes from the submission's round trip, with no signal, no wake-up through the store
/// and no second call (see <see cref="LeaseBroker"/>).
/// </remarks>
public sealed partial class LeaseWaiters(ITaskSignals signals, LongPoll longPoll, ILogger<LeaseWaiters> logger)
    : IHostedService
{
    private readonly Lock gate = new();
    private readonly ILogger<LeaseWaiters> log = logger;
    private readonly LongPoll poll = longPoll;
    // Keys "t:{type}" and "m:{model}"; oldest waiter first.
    private readonly Dictionary<string, LinkedList<Waiter>> waiters = new(StringComparer.Ordinal);
    private IAsyncDisposable? subscription;

    public async Task StartAsync(CancellationToken cancellationToken) =>
        subscription = await signals.OnWorkQueuedAsync(Notify).ConfigureAwait(false);

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (subscription is not null)
        {
            await subscription.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Registers interest in <paramref name="types"/> for a worker that has <paramref name="models"/>
    /// loaded. Register before looking for work, then wait: a task that arrives in between is not missed.
    /// <paramref name="workerId"/> and <paramref name="maxTasks"/> (its lease's most tasks) are what
    /// a submission that claims the waiter leases for.
    /// </summary>
    public Waiter Register(IReadOnlyList<string> types, IReadOnlyList<string> models, string workerId, int maxTasks)
    {
        var waiter = new Waiter(this, types, workerId, maxTasks);
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
                LogWoke(log, type, model);
            }
        }
    }

    /// <summary>
    /// Takes a lease that waits here for a task of <paramref name="type"/> (one whose worker has
    /// <paramref name="model"/> loaded first) so that a submission can hand it the task; null when
    /// none waits. Only a lease that has looked for work and is waiting is taken (one still in its
    /// own script call may lease other tasks and return without the hand). The caller must
    /// <see cref="Hand.Give"/> it an answer, null when the task was not leased to it.
    /// </summary>
    public Hand? Claim(string type, string? model)
    {
        lock (gate)
        {
            Hand? hand = null;
            if ((model is not null && WakeFirst("m:" + model, type, claim: true, out hand)) || WakeFirst("t:" + type, type, claim: true, out hand))
            {
                LogClaimed(log, hand!.WorkerId, type);
            }
            return hand;
        }
    }

    private bool WakeFirst(string key, string type) => WakeFirst(key, type, claim: false, out _);

    private bool WakeFirst(string key, string type, bool claim, out Hand? hand)
    {
        hand = null;
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
            else if (waiter.Types.Contains(type) && (!claim || waiter.IsWaiting) && waiter.TryWake(type, claim, out hand))
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

    [LoggerMessage(Level = LogLevel.Trace, Message = "A submission of {TaskType} claimed the waiting lease of {WorkerId}")]
    private static partial void LogClaimed(ILogger logger, string workerId, string taskType);

    [LoggerMessage(Level = LogLevel.Debug, Message = "The lease of {WorkerId} is waiting for work")]
    private static partial void LogWaiting(ILogger logger, string workerId);

    /// <summary>What woke a waiter: a task of <see cref="Type"/> was queued, or a submission took it (<see cref="Hand"/>).</summary>
    public sealed record Wake(string Type, Hand? Hand);

    /// <summary>
    /// A waiting lease claimed by a submission: the worker and how many tasks it asked for, and the
    /// lease's answer once the submission's script has run (null: nothing was leased to it).
    /// </summary>
    public sealed class Hand(string workerId, int maxTasks)
    {
        private readonly TaskCompletionSource<LeaseResult?> answer = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string WorkerId { get; } = workerId;

        public int MaxTasks { get; } = maxTasks;

        public Task<LeaseResult?> Answer => answer.Task;

        /// <summary>Gives the waiting lease its answer; only the first call counts.</summary>
        public void Give(LeaseResult? result) => answer.TrySetResult(result);
    }

    /// <summary>
    /// One waiting lease, woken at most once. Disposing it withdraws it; a wake-up that raced in
    /// and was not taken through <see cref="WaitAsync"/> is passed on to another waiter, so no
    /// notification is lost to a waiter that stopped listening.
    /// </summary>
    public sealed class Waiter(LeaseWaiters owner, IReadOnlyList<string> types, string workerId, int maxTasks) : IDisposable
    {
        private readonly TaskCompletionSource<Wake?> woken = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool taken;
        private volatile bool waiting;

        public IReadOnlyList<string> Types { get; } = types;

        internal bool IsDone => woken.Task.IsCompleted;

        /// <summary>True once the lease has looked for work and waits (only then may a submission claim it).</summary>
        internal bool IsWaiting => waiting;

        internal bool TryWake(string type, bool claim, out Hand? hand)
        {
            hand = claim ? new Hand(workerId, maxTasks) : null;
            if (woken.TrySetResult(new Wake(type, hand)))
            {
                return true;
            }
            hand = null;
            return false;
        }

        /// <summary>
        /// Returns what woke it, or null when the time ran out. A wake-up that comes as the time runs
        /// out (or as the caller gives up) still counts: a claim must reach its lease.
        /// </summary>
        public async Task<Wake?> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            waiting = true;
            if (owner.log.IsEnabled(LogLevel.Debug))
            {
                LogWaiting(owner.log, workerId);
            }
            try
            {
                await owner.poll.WaitAsync(woken.Task, timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The caller gave up. Unless a claim came first: then a submission is leasing this
                // worker a task, and its answer is taken as that of a lease call that ended as the
                // caller left would be (the tasks go back to the queue when their leases expire).
                if (woken.TrySetResult(null) || woken.Task.Result?.Hand is null)
                {
                    throw;
                }
            }
            // Whichever comes first ends the wait: a wake-up, or this (the time ran out).
            woken.TrySetResult(null);
            taken = true;
            return woken.Task.Result;
        }

        public void Dispose()
        {
            if (!woken.TrySetResult(null) && !taken && woken.Task.Result is { } wake)
            {
                // A notification (a claim is always taken: see WaitAsync): pass it on.
                owner.Notify(wake.Type);
            }
        }
    }
}
