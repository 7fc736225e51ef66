using Hangfire.Redis.StackExchange;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Cluster;

/// <summary>
/// The whole service on a real Redis Cluster of three primaries, as a team that outgrew one Redis
/// runs it: the API, the scheduler (Hangfire on the cluster too) and Python workers, connected
/// with the three nodes in <c>ConnectionStrings__redis</c>. What a user does with it works, and no
/// answer is a 500.
/// </summary>
[Trait("Category", "Cluster")]
public sealed class ClusterFleetTests : IClassFixture<ClusterFleetFixture>, IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly ClusterFleetFixture fleet;

    public ClusterFleetTests(ClusterFleetFixture fleet)
    {
        this.fleet = fleet;
        if (fleet.Workers.Count == 0)
        {
            fleet.StartWorker("cluster-1", capacity: 4);
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Assert.True(fleet.Api.ServerErrors.Count == 0, "Answers of 500 or more:\n" + string.Join('\n', fleet.Api.ServerErrors));
        return Task.CompletedTask;
    }

    [Fact]
    public async Task TheDeploymentsKeys_LiveOnOneNode_AndHangfiresOnANodeOfTheirOwnSlot()
    {
        var taskSlot = fleet.Redis.Connection.HashSlot("{tm}:task:x");
        var hangfireSlot = fleet.Redis.Connection.HashSlot("{tm-hangfire}:x");
        await fleet.SubmitAsync("""{"type":"tts","input":{"text":"where do I live"}}""");

        // Every key is under one of the two hash tags: a cluster keeps each deployment's keys in one slot.
        foreach (var server in fleet.Redis.Primaries)
        {
            await foreach (var key in server.KeysAsync(pattern: "*"))
            {
                Assert.Contains(fleet.Redis.Connection.HashSlot(key), (int[])[taskSlot, hangfireSlot]);
            }
        }
    }

    [Theory]
    [InlineData("""{"type":"llm","input":{"prompt":"Say hi","max_tokens":16},"metadata":{"sim":{"chunks":3}}}""", "text")]
    [InlineData("""{"type":"sd","input":{"prompt":"a lighthouse at dusk","width":64,"height":64,"steps":2}}""", "images")]
    [InlineData("""{"type":"tts","input":{"text":"Hello from a cluster."}}""", "audio")]
    [InlineData("""{"type":"image_to_text","input":{"image":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}""", "text")]
    public async Task EachTaskType_Succeeds(string request, string outputField)
    {
        var id = await fleet.SubmitAsync(request);

        var task = await fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed", Timeout);

        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        Assert.True(task.GetProperty("output").TryGetProperty(outputField, out _), task.ToString());
    }

    [Fact]
    public async Task ARunningTask_IsCanceled()
    {
        var id = await fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"long"},"metadata":{"sim":{"duration_ms":60000}}}""");
        await fleet.WaitForStatusAsync(id, s => s == "running", Timeout);

        var canceling = await fleet.Client.PostAsync($"/api/tasks/{id}/cancel", null);

        Assert.Equal(System.Net.HttpStatusCode.Accepted, canceling.StatusCode);
        var task = await fleet.WaitForStatusAsync(id, s => s is "canceled" or "succeeded" or "failed", Timeout);
        Assert.Equal("canceled", task.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ARetryableFailure_IsRetriedThroughHangfire_ThenFails()
    {
        var id = await fleet.SubmitAsync("""{"type":"sd","input":{"prompt":"fail"},"max_attempts":2,"metadata":{"sim":{"fail":"retryable"}}}""");

        var task = await fleet.WaitForStatusAsync(id, s => s is "failed" or "succeeded", Timeout);

        Assert.Equal("failed", task.GetProperty("status").GetString());
        Assert.Equal([1, 2], task.GetProperty("attempts").EnumerateArray().Select(a => a.GetProperty("attempt").GetInt32()));
        // The retry was a Hangfire job, kept in Hangfire's storage on the cluster (it is marked
        // succeeded once it has queued the task, which may be after the second attempt ended).
        var storage = new RedisStorage(fleet.Redis.Connection, new RedisStorageOptions { Prefix = "{tm-hangfire}:" });
        var retries = await Wait.ForAsync(() => Task.FromResult(storage.GetMonitoringApi().SucceededJobs(0, 1000)
            .Count(j => j.Value.Job?.Args is { Count: 2 } args && (string)args[0] == id)), n => n >= 1, Timeout, "the retry job to succeed");
        Assert.Equal(1, retries);
    }

    [Fact]
    public async Task AKilledWorkersTask_IsQueuedAgain_AndSucceedsOnAnother()
    {
        // The task names a model only the doomed worker has loaded, so that it runs there first.
        var doomed = fleet.StartWorker("cluster-doomed", environment: new Dictionary<string, string> { ["TASKMANAGER_MODELS"] = "doomed-model" });
        var doomedId = await fleet.WorkerIdAsync("cluster-doomed");
        var id = await fleet.SubmitAsync("""{"type":"tts","model":"doomed-model","input":{"text":"survive"},"metadata":{"sim":{"duration_ms":3000}}}""");
        await Wait.ForAsync(() => fleet.GetTaskAsync(id), t => t.GetProperty("status").GetString() == "running" &&
            t.GetProperty("worker_id").GetString() == doomedId, Timeout, "the task to run on the doomed worker");

        doomed.Process.Kill(entireProcessTree: true);

        var task = await fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed", Timeout);
        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        var attempts = task.GetProperty("attempts").EnumerateArray().ToArray();
        Assert.Equal(2, attempts.Length);
        Assert.Equal(("lease_expired", doomedId), (attempts[0].GetProperty("outcome").GetString(), attempts[0].GetProperty("worker_id").GetString()));
        Assert.NotEqual(doomedId, task.GetProperty("worker_id").GetString());
    }

    [Fact]
    public async Task Listing_Stats_AndTheEventStream_Work()
    {
        var id = await fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"stream"},"metadata":{"sim":{"chunks":5,"duration_ms":200}}}""");
        await using var sse = await SseClient.ConnectAsync(fleet.Client, $"/api/tasks/{id}/events");

        var events = await sse.ReadToEndAsync(Timeout);

        Assert.Equal([1, 2, 3, 4, 5], events.Where(e => e.Event == "chunk").Select(e => e.Data.GetProperty("index").GetInt32()));
        Assert.Equal("succeeded", events[^1].Data.GetProperty("status").GetString());
        var listed = await (await fleet.Client.GetAsync("/api/tasks?status=succeeded&type=llm&limit=100")).JsonAsync();
        Assert.Contains(id, listed.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("id").GetString()));
        var stats = await (await fleet.Client.GetAsync("/api/tasks/stats/metrics")).JsonAsync();
        Assert.True(stats.GetProperty("by_type").GetProperty("llm").GetProperty("succeeded").GetInt64() >= 1, stats.ToString());
        var health = await (await fleet.Client.GetAsync("/api/health")).JsonAsync();
        Assert.Equal("healthy", health.GetProperty("status").GetString());
    }
}
