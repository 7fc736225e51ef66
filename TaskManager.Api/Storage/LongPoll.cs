namespace TaskManager.Api.Storage;

/// <summary>
/// The wait of a long poll, which usually ends by timing out.
/// </summary>
/// <remarks>
/// A thousand idle workers each hold a lease and a heartbeat for up to a minute; dozens of those
/// waits end every second. Each ending on its own wakes the API's threads cold, and on a small
/// machine that costs far more than the request itself (about a millisecond of CPU each, measured
/// with 1,000 idle workers on 2 cores). So a wait of <see cref="GridFrom"/> or more ends on a
/// whole second of a shared grid: the last one before its time is up (it may end up to a second
/// and a half early, never late), and all the waits that end in the same second end together, in
/// one pass of one timer. The API's threads then wake once a second for all of them, and the
/// workers' next polls arrive together too. A wait that is answered (work arrived, a task must
/// stop) ends at once, as before: only timeouts are grouped. Shorter waits keep their own timer.
/// </remarks>
internal static class LongPoll
{
    /// <summary>Waits at least this long end on the shared one-second grid.</summary>
    public static readonly TimeSpan GridFrom = TimeSpan.FromSeconds(10);

    private const long GridMs = 1000;
    private static readonly Lock Gate = new();
    // Grid second (Environment.TickCount64 / GridMs) to the waits that end in it.
    private static readonly Dictionary<long, TaskCompletionSource> Ends = [];
    private static Timer? grid;

    /// <summary>
    /// Waits for <paramref name="task"/> at most <paramref name="timeout"/>; true when it completed.
    /// A timeout is not an exception here: a thousand idle workers would pay for one hundreds of
    /// times a second. Cancellation still throws.
    /// </summary>
    public static async Task<bool> WaitAsync(Task task, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (task.IsCompleted)
        {
            return true;
        }
        if (timeout < GridFrom)
        {
            using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timer.CancelAfter(timeout);
            await task.WaitAsync(timer.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        else
        {
            Task either = Task.WhenAny(task, EndOfSecondBefore(Environment.TickCount64 + (long)timeout.TotalMilliseconds));
            await (cancellationToken.CanBeCanceled ? either.WaitAsync(cancellationToken) : either)
                .ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        cancellationToken.ThrowIfCancellationRequested();
        return task.IsCompleted;
    }

    /// <summary>A task that completes on the last grid second at or before <paramref name="deadlineMs"/>.</summary>
    private static Task EndOfSecondBefore(long deadlineMs)
    {
        var second = deadlineMs / GridMs;
        lock (Gate)
        {
            if (!Ends.TryGetValue(second, out var end))
            {
                // Continuations go to the thread pool, not the timer's thread: a second's waits
                // then finish side by side.
                Ends[second] = end = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
            // Started on first use, aligned to the grid, and left running: a tick a second costs nothing.
            grid ??= new Timer(_ => EndDue(), null, GridMs - Environment.TickCount64 % GridMs, GridMs);
            return end.Task;
        }
    }

    /// <summary>Ends every wait whose second has come (half a second of slack: a timer may fire a little early).</summary>
    private static void EndDue()
    {
        var now = (Environment.TickCount64 + GridMs / 2) / GridMs;
        List<(long Second, TaskCompletionSource End)>? due = null;
        lock (Gate)
        {
            foreach (var (second, end) in Ends)
            {
                if (second <= now)
                {
                    (due ??= []).Add((second, end));
                }
            }
            foreach (var (second, _) in due ?? [])
            {
                Ends.Remove(second);
            }
        }
        foreach (var (_, end) in due ?? [])
        {
            end.TrySetResult();
        }
    }
}
