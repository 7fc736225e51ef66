using System.Diagnostics;
using System.Net;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// A worker that runs nothing has its heartbeat held long: the API keeps it alive meanwhile, and
/// answers the held heartbeat at once when the worker is given a task, so that the worker's next
/// heartbeat (naming the task) extends its lease in time. Short settings: a heartbeat each second,
/// stale after 2 s of silence, leases of 6 s. In the timing collection: how long a heartbeat is
/// held (well under the 30 s asked; half a lease at most) is what these tests bound.
/// </summary>
[Trait("Category", "Api")]
[Collection(TimingCollection.Name)]
public sealed class IdleHeartbeatTests(RedisServer redis) : IClassFixture<RedisServer>, IAsyncLifetime
{
    private ApiProcess api = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        api = await ApiProcess.StartAsync(redis, environment: new Dictionary<string, string>
        {
            ["TaskManager__HeartbeatIntervalSeconds"] = "1",
            ["TaskManager__WorkerStaleSeconds"] = "2",
            ["TaskManager__WorkerDeadSeconds"] = "4",
            ["TaskManager__LeaseTtlSeconds"] = "6",
        });
    }

    public async Task DisposeAsync() => await api.DisposeAsync();

    [Fact]
    public async Task AnIdleWorkersHeldHeartbeat_KeepsItHealthy_AndIsAnsweredWhenItIsGivenATask()
    {
        var workerId = await HotPathTests.RegisterWorkerAsync(api.Client, ["llm"]);
        var clock = Stopwatch.StartNew();
        var heartbeat = api.Client.PostObjectAsync($"/api/workers/{workerId}/heartbeat?wait_seconds=30", new { running = Array.Empty<object>() });

        // Past the stale threshold with no heartbeat answered, the worker is still healthy: its
        // held heartbeat says it is alive, and the API keeps its last heartbeat current.
        var alive = await Wait.ForAsync(() => WorkerAsync(workerId),
            w => w.GetProperty("seconds_since_heartbeat").GetDouble() < 1.5 && clock.Elapsed > TimeSpan.FromSeconds(3.5),
            TimeSpan.FromSeconds(15), "3.5 s of a held heartbeat, the worker's last heartbeat kept fresh");
        Assert.False(heartbeat.IsCompleted, "The idle heartbeat was answered before its time.");
        Assert.Equal("healthy", alive.GetProperty("status").GetString());

        // Given a task (one lease call), the worker gets its held heartbeat answered at once.
        await api.Client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"wake"}}""");
        var lease = await api.Client.PostObjectAsync($"/api/workers/{workerId}/lease?wait_seconds=0", new { max_tasks = 1 });
        Assert.Equal(HttpStatusCode.OK, lease.StatusCode);
        var answered = await Task.WhenAny(heartbeat, Task.Delay(TimeSpan.FromSeconds(10)));
        Assert.Same(heartbeat, answered);
        Assert.Equal(HttpStatusCode.OK, (await heartbeat).StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(25), $"The heartbeat was answered after {clock.Elapsed.TotalSeconds:0.0} s.");
    }

    [Fact]
    public async Task AWorkerWithTasks_IsHeldNoLongerThanHalfALease()
    {
        var workerId = await HotPathTests.RegisterWorkerAsync(api.Client, ["llm"]);
        await api.Client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"busy"}}""");
        var task = (await (await api.Client.PostObjectAsync($"/api/workers/{workerId}/lease?wait_seconds=0", new { max_tasks = 1 })).JsonAsync())
            .GetProperty("tasks")[0];
        var clock = Stopwatch.StartNew();

        // It names no task, but it was given one: it is not idle, and its heartbeat is held only
        // half a lease (3 s here), never the 30 s asked.
        var response = await api.Client.PostObjectAsync($"/api/workers/{workerId}/heartbeat?wait_seconds=30", new { running = Array.Empty<object>() });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(12), $"It was held {clock.Elapsed.TotalSeconds:0.0} s.");
        Assert.NotNull(task.GetProperty("task_id").GetString());
    }

    private async Task<JsonElement> WorkerAsync(string workerId)
    {
        var health = await (await api.Client.GetAsync("/api/tasks/workers/health")).JsonAsync();
        return health.GetProperty("workers").EnumerateArray().Single(w => w.GetProperty("id").GetString() == workerId);
    }
}
