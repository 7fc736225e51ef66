using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>A fleet whose API lets a task go on when its OpenAI client goes away (<c>TaskManager:OpenAi:CancelOnDisconnect=false</c>).</summary>
public sealed class KeepOnDisconnectFleet : Fleet<RedisServer>
{
    protected override IDictionary<string, string> Settings =>
        new Dictionary<string, string>(ServerSettings) { ["TaskManager__OpenAi__CancelOnDisconnect"] = "false" };
}

/// <summary>
/// A client that lost an OpenAI stream picks it up where it was, at the task's own event stream:
/// each chunk it got carried the id of its task event, so <c>Last-Event-ID</c> brings the rest.
/// </summary>
[Trait("Category", "Fleet")]
public sealed class OpenAiResumeTests : IClassFixture<KeepOnDisconnectFleet>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly KeepOnDisconnectFleet fleet;

    public OpenAiResumeTests(KeepOnDisconnectFleet fleet)
    {
        this.fleet = fleet;
        if (fleet.Workers.Count == 0)
        {
            fleet.StartWorker("openai", capacity: 1, environment: OpenAiTests.Environment);
        }
    }

    [Fact]
    public async Task AClientThatDropsTheStream_ResumesAtTheTaskEvents_AndGetsEveryRemainingTokenOnce()
    {
        await fleet.WorkerIdAsync("openai");
        using var response = await OpenAi.PostAsync(fleet.Client, "/v1/chat/completions",
            $$"""{"model":"{{OpenAiTests.ChatModel}}","messages":[{"role":"user","content":"a story"}],"max_tokens":40,"stream":true}""");
        var id = response.Headers.GetValues("X-TaskManager-Task-Id").Single();
        var first = await SseClient.OfAsync(response);
        var received = new List<string>();
        string? last = null;
        // At least 12 tokens come, 10 a second: three, then the connection drops.
        while (received.Count < 3 && await first.NextRawAsync(Timeout) is { } e)
        {
            received.Add(JsonDocument.Parse(e.Data).RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()!);
            last = e.Id;
        }
        await first.DisposeAsync();
        Assert.Equal("running", (await fleet.GetTaskAsync(id)).GetProperty("status").GetString());

        await using var resumed = await SseClient.ConnectAsync(fleet.Client, $"/api/tasks/{id}/events", last);
        var rest = (await resumed.ReadToEndAsync(Timeout)).Where(e => e.Event == "chunk").ToArray();

        // The task went on without its client, and the two streams together hold every token once, in order.
        var task = await fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed" or "canceled", Timeout);
        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        var output = task.GetProperty("output");
        Assert.Equal(output.GetProperty("text").GetString(), string.Concat(received.Concat(rest.Select(e => e.Data.GetProperty("text").GetString()))));
        Assert.Equal(output.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), received.Count + rest.Length);
        Assert.Equal(Enumerable.Range(4, rest.Length), rest.Select(e => e.Data.GetProperty("index").GetInt32()));
        Assert.All(rest, e => Assert.True(long.Parse(e.Id!) > long.Parse(last!)));
    }
}
