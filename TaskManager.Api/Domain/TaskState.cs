namespace TaskManager.Api.Domain;

/// <summary>The states of a task, as they appear in the API (<c>status</c>) and in Redis.</summary>
public static class TaskState
{
    public const string Queued = "queued";
    public const string Scheduled = "scheduled";
    public const string Running = "running";
    public const string Canceling = "canceling";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Canceled = "canceled";
    public const string TimedOut = "timed_out";
    public const string Expired = "expired";

    public static readonly IReadOnlyList<string> All =
        [Queued, Scheduled, Running, Canceling, Succeeded, Failed, Canceled, TimedOut, Expired];

    private static readonly HashSet<string> FinalStates = [Succeeded, Failed, Canceled, TimedOut, Expired];

    /// <summary>
    /// The final states a client may run again (<c>POST /api/tasks/{id}/retry</c>): back to queued
    /// with a fresh attempt budget. The one way out of a final state, so it is not a transition of
    /// the state machine below (a success is never run again).
    /// </summary>
    public static readonly IReadOnlyList<string> Retryable = [Failed, TimedOut, Canceled, Expired];

    /// <summary>
    /// The state machine as data: for each state, the states it may move to. Final states move
    /// nowhere. The Lua scripts receive this same table (see <c>Storage/LuaLibrary</c>), so the
    /// rules live in one place.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlySet<string>> Transitions =
        new Dictionary<string, IReadOnlySet<string>>
        {
            // queued or scheduled -> expired: not started within the task's start deadline.
            [Queued] = new HashSet<string> { Running, Canceled, Expired },
            [Scheduled] = new HashSet<string> { Queued, Canceled, Expired },
            // running -> queued: a retry with no backoff or a lease handed back; running -> scheduled:
            // a retry after a backoff. A worker's report while canceling always ends canceled:
            // the client asked to stop, so a late result does not override that.
            [Running] = new HashSet<string> { Succeeded, Failed, TimedOut, Queued, Scheduled, Canceling },
            [Canceling] = new HashSet<string> { Canceled },
            [Succeeded] = new HashSet<string>(),
            [Failed] = new HashSet<string>(),
            [Canceled] = new HashSet<string>(),
            [TimedOut] = new HashSet<string>(),
            [Expired] = new HashSet<string>(),
        };

    public static bool IsKnown(string state) => Transitions.ContainsKey(state);

    public static bool IsFinal(string state) => FinalStates.Contains(state);

    public static bool CanRetry(string state) => Retryable.Contains(state);

    public static bool CanMove(string from, string to) =>
        Transitions.TryGetValue(from, out var targets) && targets.Contains(to);
}
