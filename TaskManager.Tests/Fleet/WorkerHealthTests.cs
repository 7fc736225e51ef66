using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// Worker health as the fleet endpoints show it, and draining. In the timing collection: a killed
/// worker must show stale, then dead, within the configured times of the wall clock.
/// </summary>
[Trait("Category", "Fleet")]
[Collection(TimingCollection.Name)]
public sealed class WorkerHealthTests(FleetFixture fleet) : IClassFixture<FleetFixture>
{
    [Fact]
    public async Task KilledWorker_ShowsStale_ThenDead_WithinTheConfiguredTimes()
    {
        var worker = fleet.StartWorker("doomed");
        var id = await fleet.WorkerIdAsync("doomed");

        worker.Process.Kill(entireProcessTree: true);
        var killedAt = DateTimeOffset.UtcNow;
        await Wait.UntilAsync(async () => (await fleet.WorkerHealthAsync(id)).GetProperty("status").GetString() == "stale",
            TimeSpan.FromSeconds(10), "the killed worker to show stale");
        var staleAfter = DateTimeOffset.UtcNow - killedAt;
        await Wait.UntilAsync(async () => (await fleet.WorkerHealthAsync(id)).GetProperty("status").GetString() == "dead",
            TimeSpan.FromSeconds(10), "the killed worker to show dead");
        var deadAfter = DateTimeOffset.UtcNow - killedAt;

        // Stale after 2 s of silence and dead after 4 s (the fixture's settings), counted from
        // the last heartbeat, which came at most one heartbeat interval (1 s) before the kill.
        Assert.InRange(staleAfter.TotalSeconds, 1, 3.5);
        Assert.InRange(deadAfter.TotalSeconds, 3, 5.5);
    }

    [Fact]
    public async Task DrainedWorker_FinishesItsRunningTask_AndGetsNoNewOne()
    {
        fleet.StartWorker("drained");
        var drained = await fleet.WorkerIdAsync("drained");
        var running = await fleet.SubmitAsync("""{"type":"tts","input":{"text":"long"},"metadata":{"sim":{"duration_ms":2000}}}""");
        await fleet.WaitForStatusAsync(running, s => s == "running", TimeSpan.FromSeconds(30));

        var response = await fleet.Client.PostAsync($"/api/admin/workers/{drained}/drain", null);
        Assert.Equal("draining", (await response.JsonAsync()).GetProperty("status").GetString());
        var next = await fleet.SubmitAsync("""{"type":"tts","input":{"text":"next"}}""");

        var finished = await fleet.WaitForStatusAsync(running, s => s is "succeeded" or "failed", TimeSpan.FromSeconds(30));
        Assert.Equal("succeeded", finished.GetProperty("status").GetString());
        Assert.Equal(drained, finished.GetProperty("worker_id").GetString());
        var waiting = await fleet.GetTaskAsync(next);
        Assert.Equal("queued", waiting.GetProperty("status").GetString());
        Assert.Contains("draining", waiting.GetProperty("waiting_reason").GetString());
        Assert.Equal("draining", (await fleet.WorkerHealthAsync(drained)).GetProperty("status").GetString());

        fleet.StartWorker("relief");
        var relief = await fleet.WorkerIdAsync("relief");
        var done = await fleet.WaitForStatusAsync(next, s => s == "succeeded", TimeSpan.FromSeconds(30));
        Assert.Equal(relief, done.GetProperty("worker_id").GetString());
    }
}
