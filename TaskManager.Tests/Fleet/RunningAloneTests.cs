using System.Net;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// The parts deployed without the AppHost, configured only by their environment variables:
/// the API (api and scheduler roles) and the Python worker.
/// </summary>
[Trait("Category", "Fleet")]
public sealed class RunningAloneTests(RedisServer redis) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task ApiSchedulerAndWorker_RunAlone_AndCarryATaskToSucceeded()
    {
        await redis.FlushAsync();
        await using var api = await ApiProcess.StartAsync(redis);
        await using var scheduler = await ApiProcess.StartAsync(redis, role: "scheduler");
        await using var worker = WorkerProcess.Start(api.BaseAddress, new Dictionary<string, string>
        {
            ["TASKMANAGER_WORKER_NAME"] = "alone-1",
            ["TASKMANAGER_CAPACITY"] = "2",
        });

        var created = await (await api.Client.PostJsonAsync("/api/tasks",
            """{"type":"sd","input":{"prompt":"a red square","width":64,"height":64}}""")).JsonAsync();
        var id = created.GetProperty("id").GetString();
        var task = await Wait.ForAsync(
            async () => await (await api.Client.GetAsync($"/api/tasks/{id}")).JsonAsync(),
            t => t.GetProperty("status").GetString() is "succeeded" or "failed",
            TimeSpan.FromSeconds(60), "the task to finish; worker log:\n" + worker.Output);

        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        Assert.Equal(1, task.GetProperty("output").GetProperty("images").GetArrayLength());
        // The scheduler role serves health, not the client API.
        Assert.Equal(HttpStatusCode.OK, (await scheduler.Client.GetAsync("/health")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await scheduler.Client.GetAsync($"/api/tasks/{id}")).StatusCode);
    }

    [Fact]
    public async Task Worker_OnSigterm_StopsCleanly()
    {
        await redis.FlushAsync();
        await using var api = await ApiProcess.StartAsync(redis);
        await using var worker = WorkerProcess.Start(api.BaseAddress);
        // Registered and long-polling: its worker record is in Redis.
        await Wait.UntilAsync(async () => (await redis.Db.SortedSetLengthAsync("{tm}:workers")) == 1,
            TimeSpan.FromSeconds(30), "the worker to register; its log:\n" + worker.Output);

        worker.Terminate();
        var exited = await worker.Process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token)
            .ContinueWith(t => t.IsCompletedSuccessfully);

        Assert.True(exited, "The worker did not exit within 20 s of SIGTERM:\n" + worker.Output);
        Assert.Equal(0, worker.Process.ExitCode);
    }
}
