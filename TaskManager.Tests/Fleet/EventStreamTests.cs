using System.Diagnostics;
using System.Net;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// A task's events over server-sent events, from a real worker through the real API: streamed
/// chunks arrive in order, and a client that reconnects with Last-Event-ID misses none and gets
/// none twice.
/// </summary>
[Trait("Category", "Fleet")]
public sealed class EventStreamTests : IClassFixture<FleetFixture>
{
    private const string Streaming = """{"type":"llm","input":{"prompt":"count to fifty","stream":true},"metadata":{"sim":{"chunks":50,"duration_ms":1500}}}""";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly FleetFixture fleet;

    public EventStreamTests(FleetFixture fleet)
    {
        this.fleet = fleet;
        if (fleet.Workers.Count == 0)
        {
            fleet.StartWorker("streamer");
        }
    }

    [Fact]
    public async Task StreamingTask_DeliversFiftyChunksInOrder_ThenTheFinalState()
    {
        var id = await fleet.SubmitAsync(Streaming);
        await using var sse = await SseClient.ConnectAsync(fleet.Client, $"/api/tasks/{id}/events");

        var events = await sse.ReadToEndAsync(Timeout);

        var chunks = events.Where(e => e.Event == "chunk").ToArray();
        Assert.Equal(Enumerable.Range(1, 50), chunks.Select(c => c.Data.GetProperty("index").GetInt32()));
        Assert.All(chunks, c => Assert.Equal(1, c.Data.GetProperty("attempt").GetInt32()));
        var statuses = events.Where(e => e.Event == "status").Select(e => e.Data.GetProperty("status").GetString()!).ToArray();
        Assert.Equal(["queued", "running", "succeeded"], statuses);
        Assert.Equal("status", events[^1].Event);
        Assert.All(events, e => Assert.False(string.IsNullOrEmpty(e.Id)));
        Assert.Equal(events.Count, events.Select(e => e.Id).Distinct().Count());
        // The chunks put together are the text the task returned.
        var task = await fleet.GetTaskAsync(id);
        Assert.Equal(task.GetProperty("output").GetProperty("text").GetString(),
            string.Concat(chunks.Select(c => c.Data.GetProperty("text").GetString())));
    }

    [Fact]
    public async Task ClientThatDropsAfterTwentyChunks_AndReconnectsWithLastEventId_GetsChunksTwentyOneToFiftyExactlyOnce()
    {
        var id = await fleet.SubmitAsync(Streaming);
        string? lastId = null;
        await using (var first = await SseClient.ConnectAsync(fleet.Client, $"/api/tasks/{id}/events"))
        {
            var seen = 0;
            while (seen < 20 && await first.NextAsync(Timeout) is { } e)
            {
                lastId = e.Id;
                if (e.Event == "chunk")
                {
                    seen++;
                }
            }
            Assert.Equal(20, seen);
        }

        await using var second = await SseClient.ConnectAsync(fleet.Client, $"/api/tasks/{id}/events", lastId);
        var rest = await second.ReadToEndAsync(Timeout);

        Assert.Equal(Enumerable.Range(21, 30), rest.Where(e => e.Event == "chunk").Select(c => c.Data.GetProperty("index").GetInt32()));
        Assert.Equal("succeeded", rest[^1].Data.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ReconnectAfterTheFinalEvent_EndsAtOnceWith204_AndLeavesNoSubscription()
    {
        var id = await fleet.SubmitAsync(Streaming);
        List<SseEvent> events;
        await using (var sse = await SseClient.ConnectAsync(fleet.Client, $"/api/tasks/{id}/events"))
        {
            events = await sse.ReadToEndAsync(Timeout);
        }
        Assert.Equal("succeeded", events[^1].Data.GetProperty("status").GetString());
        // The ended stream's own subscription goes (its unsubscribe may land just after the end).
        await Wait.UntilAsync(async () => await SubscribersAsync(id) == 0, TimeSpan.FromSeconds(5), "the ended stream's subscription to go");

        // What a browser's EventSource does once the stream has ended: reconnect with the last id.
        var watch = Stopwatch.StartNew();
        using var reconnect = new HttpRequestMessage(HttpMethod.Get, $"/api/tasks/{id}/events");
        reconnect.Headers.Add("Last-Event-ID", events[^1].Id);
        using var cut = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var answer = await fleet.Client.SendAsync(reconnect, HttpCompletionOption.ResponseHeadersRead, cut.Token);
        var body = await answer.Content.ReadAsStringAsync(cut.Token);
        watch.Stop();

        Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
        Assert.Equal("", body);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"the reconnect took {watch.Elapsed.TotalMilliseconds:F0} ms to end");
        // Nobody is left subscribed to the task's event channel.
        Assert.Equal(0, await SubscribersAsync(id));

        // A reconnect from an earlier event of the ended task gets the rest, then the stream ends.
        await using var earlier = await SseClient.ConnectAsync(fleet.Client, $"/api/tasks/{id}/events", events[^3].Id);
        var rest = await earlier.ReadToEndAsync(Timeout);
        Assert.Equal(events.TakeLast(2).Select(e => e.Id), rest.Select(e => e.Id));
    }

    private async Task<long> SubscribersAsync(string id)
    {
        var reply = (StackExchange.Redis.RedisResult[])(await fleet.Redis.Db.ExecuteAsync("PUBSUB", "NUMSUB", $"{{tm}}:ev:{id}"))!;
        return (long)reply[1];
    }
}
