using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// Placement at lease time with real Python workers: a task goes to a worker that has its model
/// loaded, and never to one without the GPU memory it needs.
/// </summary>
[Trait("Category", "Fleet")]
public sealed class PlacementTests(FleetFixture fleet) : IClassFixture<FleetFixture>
{
    [Fact]
    public async Task TasksNamingAModel_GoToTheIdleWorkerThatHasItLoaded()
    {
        fleet.StartWorker("has-alpha", environment: new Dictionary<string, string> { ["TASKMANAGER_MODELS"] = "alpha-7b" });
        fleet.StartWorker("has-beta", environment: new Dictionary<string, string> { ["TASKMANAGER_MODELS"] = "beta-13b" });
        var alpha = await fleet.WorkerIdAsync("has-alpha");
        var beta = await fleet.WorkerIdAsync("has-beta");

        var placed = new List<(string Model, string Worker)>();
        for (var i = 0; i < 8; i++)
        {
            // One at a time, so both workers are idle and long-polling when each task arrives.
            var model = i % 2 == 0 ? "alpha-7b" : "beta-13b";
            var id = await fleet.SubmitAsync("""{"type":"llm","model":"MODEL","input":{"prompt":"hi"}}""".Replace("MODEL", model));
            var done = await fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed", TimeSpan.FromSeconds(30));
            placed.Add((model, done.GetProperty("worker_id").GetString()!));
        }

        Assert.All(placed, p => Assert.Equal(p.Model == "alpha-7b" ? alpha : beta, p.Worker));
    }

    [Fact]
    public async Task TaskNeedingMoreGpuMemoryThanAWorkerHas_WaitsAndSaysWhy_ThenRunsOnAFittingWorker()
    {
        fleet.StartWorker("small-gpu", environment: new Dictionary<string, string>
        {
            ["TASKMANAGER_GPUS"] = """[{"name":"NVIDIA L4","memory_total_mb":24576,"memory_free_mb":24000}]""",
        });
        var small = await fleet.WorkerIdAsync("small-gpu");
        var id = await fleet.SubmitAsync("""{"type":"sd","input":{"prompt":"big"},"requirements":{"gpu_memory_mb":40000}}""");
        // A task the small worker can run, submitted after: once it has run, the small worker has
        // leased past the big one at least once.
        var fits = await fleet.SubmitAsync("""{"type":"sd","input":{"prompt":"small"},"requirements":{"gpu_memory_mb":8000}}""");
        var ran = await fleet.WaitForStatusAsync(fits, s => s == "succeeded", TimeSpan.FromSeconds(30));
        Assert.Equal(small, ran.GetProperty("worker_id").GetString());

        var waiting = await fleet.GetTaskAsync(id);
        Assert.Equal("queued", waiting.GetProperty("status").GetString());
        var reason = waiting.GetProperty("waiting_reason").GetString()!;
        Assert.Contains("40000 MB", reason);
        Assert.Contains("24000 MB", reason);

        fleet.StartWorker("big-gpu", environment: new Dictionary<string, string>
        {
            ["TASKMANAGER_GPUS"] = """[{"name":"NVIDIA H100 80GB HBM3","memory_total_mb":81559,"memory_free_mb":80000}]""",
        });
        var big = await fleet.WorkerIdAsync("big-gpu");
        var done = await fleet.WaitForStatusAsync(id, s => s == "succeeded", TimeSpan.FromSeconds(30));

        Assert.Equal(big, done.GetProperty("worker_id").GetString());
        Assert.Equal(JsonValueKind.Null, done.GetProperty("waiting_reason").ValueKind);
    }
}
