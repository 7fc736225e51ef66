using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using TaskManager.Api.Coordination;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// A task's events as they come, for a follower that subscribed to them first: what
/// <c>GET /api/tasks/{id}/events</c> sends as server-sent events, and what the OpenAI-compatible
/// API turns into its stream chunks.
/// </summary>
public static partial class TaskEventFeed
{
    private const int Page = 500;

    /// <summary>How long a follower waits with nothing new before its turn to send a keep-alive.</summary>
    public static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Reads the events after <paramref name="last"/> (null: from the start) a page at a time,
    /// marking the task followed, and waits on <paramref name="subscription"/> when none is new.
    /// Yields each page read, and an empty one each time <paramref name="idle"/> passes with
    /// nothing new (the follower's turn to send a keep-alive or give up). Ends after a final status
    /// with nothing after it (a task run again after it ended has more events past its first final
    /// status, and they follow), or when the task has been deleted.
    /// </summary>
    public static async IAsyncEnumerable<IReadOnlyList<TaskEvent>> FollowAsync(ITaskInspector inspector, TaskEventSignals.Subscription subscription,
        string id, string? last, Func<TimeSpan> idle, [EnumeratorCancellation] CancellationToken aborted)
    {
        var endsAtFinal = false;
        while (!aborted.IsCancellationRequested)
        {
            var events = await inspector.ReadEventsAsync(id, last, Page, follows: true);
            if (events.Count > 0)
            {
                last = events[^1].Id;
                endsAtFinal = IsFinal(events[^1]);
                yield return events;
            }
            if (endsAtFinal && events.Count < Page)
            {
                yield break;
            }
            if (events.Count == Page)
            {
                continue;
            }
            if (!await subscription.WaitAsync(idle(), aborted))
            {
                // A task deleted meanwhile will say nothing more.
                if (await inspector.GetAsync(id) is null)
                {
                    yield break;
                }
                yield return [];
            }
        }
    }

    /// <summary>Whether the event is a final status.</summary>
    public static bool IsFinal(TaskEvent e) => e.Kind == "status" && TaskState.IsFinal(StatusOf(e.DataJson) ?? "");

    /// <summary>The status a <c>status</c> event's data names, or null.</summary>
    private static string? StatusOf(string statusJson)
    {
        var status = StatusValue().Match(statusJson);
        return status.Success ? status.Groups[1].Value : null;
    }

    [GeneratedRegex("\"status\":\"([a-z_]+)\"")]
    private static partial Regex StatusValue();
}
