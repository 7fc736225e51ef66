namespace TaskManager.Api.Coordination;

/// <summary>
/// The wait of a long poll, which usually ends by timing out.
/// </summary>
/// <remarks>
/// A thousand idle workers each hold a lease and a heartbeat for up to a minute; dozens of those
/// waits end every second. Each ending on its own wakes the API's threads cold, and on a small
/// machine that costs far more than the request itself. So a wait of <see cref="GridFrom"/> or
/// more ends on a whole second of a shared grid: the last one before its time is up (it may end up
/// to a second and a half early, never late), and all the waits that end in the same second end
/// together, in one pass of one timer. The API's threads then wake once a second for all of them,
/// and the workers' next polls arrive together too. A wait that is answered (work arrived, a task
/// must stop) ends at once: only timeouts are grouped. Shorter waits keep their own timer.
/// </remarks>
public sealed class LongPoll
{
    /// <summary>Waits at least this long end on the shared one-second grid.</summary>
    public static readonly TimeSpan GridFrom = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan GridStep = TimeSpan.FromSeconds(1);
    private readonly TimeProvider time;
    private readonly long origin;
    private readonly Lock gate = new();
    // Grid second (seconds since origin) to the waits that end in it.
    private readonly Dictionary<long, TaskCompletionSource> ends = [];
    private ITimer? grid;

    public LongPoll(TimeProvider time)
    {
        this.time = time;
        origin = time.GetTimestamp();
    }

    /// <summary>
    /// Waits for <paramref name="task"/> at most <paramref name="timeout"/>; true when it completed.
    /// A timeout is not an exception here: a thousand idle workers would pay for one hundreds of
    /// times a second. Cancellation still throws.
    /// </summary>
    public async Task<bool> WaitAsync(Task task, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (task.IsCompleted)
        {
            return true;
        }
        if (timeout < GridFrom)
        {
            using var expiry = new CancellationTokenSource(timeout, time);
            using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, expiry.Token);
            await task.WaitAsync(either.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        else
        {
            Task first = Task.WhenAny(task, EndOfSecondBefore(Elapsed + timeout));
            await (cancellationToken.CanBeCanceled ? first.WaitAsync(cancellationToken) : first)
                .ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        cancellationToken.ThrowIfCancellationRequested();
        return task.IsCompleted;
    }

    private TimeSpan Elapsed => time.GetElapsedTime(origin);

    /// <summary>A task that completes on the last grid second at or before <paramref name="deadline"/>.</summary>
    private Task EndOfSecondBefore(TimeSpan deadline)
    {
        var second = (long)(deadline / GridStep);
        lock (gate)
        {
            if (!ends.TryGetValue(second, out var end))
            {
                // Continuations go to the thread pool, not the timer's thread: a second's waits
                // then finish side by side.
                ends[second] = end = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
            // Started on first use, aligned to the grid, and left running: a tick a second costs nothing.
            grid ??= time.CreateTimer(_ => EndDue(), null, GridStep - TimeSpan.FromTicks(Elapsed.Ticks % GridStep.Ticks), GridStep);
            return end.Task;
        }
    }

    /// <summary>Ends every wait whose second has come (half a second of slack: a timer may fire a little early).</summary>
    private void EndDue()
    {
        var now = (long)((Elapsed + (GridStep / 2)) / GridStep);
        List<TaskCompletionSource>? due = null;
        lock (gate)
        {
            foreach (var (second, end) in ends)
            {
                if (second <= now)
                {
                    (due ??= []).Add(end);
                    ends.Remove(second);
                }
            }
        }
        foreach (var end in due ?? [])
        {
            end.TrySetResult();
        }
    }
}
