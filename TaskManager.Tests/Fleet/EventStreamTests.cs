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
}
