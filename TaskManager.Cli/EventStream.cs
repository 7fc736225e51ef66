using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace TaskManager.Cli;

/// <summary>One server-sent event of a task's stream: its id, kind (<c>status</c>, <c>progress</c>, <c>chunk</c>, <c>log</c>) and JSON data.</summary>
public sealed record TaskEvent(string Id, string Kind, JsonElement Data, string DataText)
{
    public int Attempt => Data.TryGetProperty("attempt", out var a) && a.ValueKind == JsonValueKind.Number ? a.GetInt32() : 0;

    public string? Text(string property) =>
        Data.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public bool IsFinalStatus => Kind == "status" && TaskStatuses.IsFinal(Text("status"));

    /// <summary>The event as one JSON line: what <c>--json</c> prints.</summary>
    public string ToJsonLine() => $"{{\"id\":{JsonSerializer.Serialize(Id)},\"event\":{JsonSerializer.Serialize(Kind)},\"data\":{DataText}}}";
}

/// <summary>The task statuses, as the API names them.</summary>
public static class TaskStatuses
{
    public static readonly string[] Final = ["succeeded", "failed", "canceled", "timed_out", "expired"];

    public static bool IsFinal(string? status) => status is not null && Final.Contains(status);
}

/// <summary>
/// Follows <c>GET /api/tasks/{id}/events</c> until the task's final status. A connection lost on
/// the way (a proxy's time-out, a restarted API) is made again with <c>Last-Event-ID</c> set to the
/// last event received, so that nothing is missed and nothing comes twice; it gives up (exit 4)
/// after <see cref="MaxReconnects"/> attempts in a row that receive nothing.
/// </summary>
public sealed class EventStream(ApiClient api, string taskId, TextWriter diagnostics)
{
    public const int MaxReconnects = 8;

    /// <summary>How many times the stream was made again after a loss.</summary>
    public int Reconnects { get; private set; }

    /// <summary>
    /// Set when the API answered 204: the task has ended and nothing follows the event asked after
    /// (its final status was at or before it), so the stream ends without a final status event.
    /// </summary>
    public bool EndedBefore { get; private set; }

    public async IAsyncEnumerable<TaskEvent> ReadAsync(string? lastEventId = null, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        var failures = 0;
        while (true)
        {
            var reader = OpenAsync(lastEventId, cancel).GetAsyncEnumerator(cancel);
            var received = false;
            Exception? lost = null;
            try
            {
                while (true)
                {
                    try
                    {
                        if (!await reader.MoveNextAsync())
                        {
                            break;
                        }
                    }
                    catch (Exception ex) when (!cancel.IsCancellationRequested && (ApiClient.IsConnectionLost(ex) || ex is UnreachableException))
                    {
                        lost = ex;
                        break;
                    }
                    var next = reader.Current;
                    received = true;
                    lastEventId = next.Id;
                    yield return next;
                    if (next.IsFinalStatus)
                    {
                        yield break;
                    }
                }
            }
            finally
            {
                await reader.DisposeAsync();
            }
            if (EndedBefore)
            {
                yield break;
            }
            // The stream closed before the final status, or broke: open it again from the last event received.
            if (lost is UnreachableException && Reconnects == 0)
            {
                throw lost; // never connected at all: the API is not there
            }
            failures = received ? 1 : failures + 1;
            if (failures > MaxReconnects)
            {
                throw lost as UnreachableException ?? api.Unreachable(lost ?? new IOException("the event stream kept closing before the task's final status"));
            }
            Reconnects++;
            await diagnostics.WriteLineAsync($"tm: the event stream was interrupted; resuming after event {lastEventId ?? "(none)"}.");
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 100 << Math.Min(failures, 5))), cancel);
        }
    }

    private async IAsyncEnumerable<TaskEvent> OpenAsync(string? lastEventId, [EnumeratorCancellation] CancellationToken cancel)
    {
        using var response = await api.SendRawAsync(HttpMethod.Get, $"api/tasks/{ApiClient.Escape(taskId)}/events", cancel: cancel,
            completion: HttpCompletionOption.ResponseHeadersRead, timeout: false, lastEventId: lastEventId);
        if (response.StatusCode == System.Net.HttpStatusCode.NoContent)
        {
            EndedBefore = true;
            yield break;
        }
        await using var body = await response.Content.ReadAsStreamAsync(cancel);
        await foreach (var item in SseParser.Create(body).EnumerateAsync(cancel))
        {
            // Every event of the task has an id (where a reconnect resumes); keep-alives are comments.
            if (item.EventId is { Length: > 0 } id)
            {
                yield return new TaskEvent(id, item.EventType, ApiClient.Parse(item.Data), item.Data);
            }
        }
    }
}
