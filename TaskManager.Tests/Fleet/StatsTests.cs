using System.Text.Json;
using TaskManager.Api.Domain;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// After a known workload through real workers, the stats endpoint and the OpenTelemetry
/// counters (scraped from /metrics) report exactly its numbers, and a paused queue holds its tasks.
/// In the timing collection: each attempt's run time must be at least the 300 ms of work it was told
/// to take, and so must the run-time percentiles.
/// </summary>
[Trait("Category", "Fleet")]
[Collection(TimingCollection.Name)]
public sealed class StatsTests : IClassFixture<FleetFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private readonly FleetFixture fleet;

    public StatsTests(FleetFixture fleet)
    {
        this.fleet = fleet;
        if (fleet.Workers.Count == 0)
        {
            fleet.StartWorker("stats-1", capacity: 4);
            fleet.StartWorker("stats-2", capacity: 4);
        }
    }

    [Fact]
    public async Task KnownWorkload_IsReportedExactly_ByTheStatsEndpointAndTheOpenTelemetryCounters()
    {
        // Other tests of this class share the deployment: compare what this workload adds.
        var statsBefore = await (await fleet.Client.GetAsync("/api/tasks/stats/metrics")).JsonAsync();
        var metricsBefore = await (await fleet.Client.GetAsync("/metrics")).Content.ReadAsStringAsync();
        // 5 canceled: tts tasks held in a paused queue, then canceled.
        await Admin("/api/admin/queues/tts/pause");
        var canceled = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            canceled.Add(await fleet.SubmitAsync("""{"type":"tts","input":{"text":"never"}}"""));
        }
        foreach (var id in canceled)
        {
            Assert.Equal("canceled", (await (await fleet.Client.PatchAsync($"/api/tasks/{id}/cancel", null)).JsonAsync()).GetProperty("status").GetString());
        }
        await Admin("/api/admin/queues/tts/resume");

        // 30 succeeded and 5 failed, each told to take 300 ms.
        var ids = new List<string>();
        for (var i = 0; i < 15; i++)
        {
            ids.Add(await fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"ok"},"metadata":{"sim":{"duration_ms":300}}}"""));
            ids.Add(await fleet.SubmitAsync("""{"type":"tts","input":{"text":"ok"},"metadata":{"sim":{"duration_ms":300}}}"""));
        }
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"bad"},"metadata":{"sim":{"duration_ms":300,"fail":"fatal"}}}"""));
        }
        await Task.WhenAll(ids.Select(id => fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed", Timeout)));

        var stats = await (await fleet.Client.GetAsync("/api/tasks/stats/metrics")).JsonAsync();
        long Added(params string[] path) => Int(Walk(stats, path)) - Int(Walk(statsBefore, path));
        Assert.Equal((30, 5, 5, 0), (Added("by_status", "succeeded"), Added("by_status", "failed"), Added("by_status", "canceled"), Added("by_status", "queued")));
        Assert.Equal((15, 5, 0), (Added("finished_total", "llm", "succeeded"), Added("finished_total", "llm", "failed"), Added("finished_total", "llm", "canceled")));
        Assert.Equal((15, 0, 5), (Added("finished_total", "tts", "succeeded"), Added("finished_total", "tts", "failed"), Added("finished_total", "tts", "canceled")));
        Assert.Equal((20, 20), (Added("submitted_total", "llm"), Added("submitted_total", "tts")));
        // Success: succeeded over succeeded, failed and timed out, all types, all time.
        long Sum(JsonElement s, string status) => s.GetProperty("finished_total").EnumerateObject().Sum(t => t.Value.GetProperty(status).GetInt64());
        var succeeded = Sum(statsBefore, "succeeded") + 30;
        var judged = succeeded + Sum(statsBefore, "failed") + 5 + Sum(statsBefore, "timed_out");
        Assert.Equal((double)succeeded / judged, stats.GetProperty("success_rate").GetDouble(), 3);
        Assert.True(stats.GetProperty("finished_per_minute").GetProperty("last15_minutes").GetDouble() >= 40 / 15.0 - 0.01);
        // Each type's finishes minute by minute over the last 15 (the fleet is younger than that, so none has left the window).
        long ByMinute(JsonElement s, string type) => s.GetProperty("finished_by_minute").GetProperty(type).EnumerateArray().Sum(m => m.GetInt64());
        Assert.Equal(15, stats.GetProperty("finished_by_minute").GetProperty("llm").GetArrayLength());
        Assert.Equal((20, 20), (ByMinute(stats, "llm") - ByMinute(statsBefore, "llm"), ByMinute(stats, "tts") - ByMinute(statsBefore, "tts")));
        // The run-time percentiles are those of the attempts' own run times (each task's
        // metrics.run_ms; only this test runs llm and tts here), counted in the histogram's buckets:
        // 300 ms of work lands in (250, 500] or, on a busy machine, a later bucket.
        var runs = new Dictionary<string, List<long>> { ["llm"] = [], ["tts"] = [] };
        foreach (var id in ids)
        {
            var task = await fleet.GetTaskAsync(id);
            var ran = task.GetProperty("metrics").GetProperty("run_ms").GetInt64();
            Assert.True(ran >= 300, $"task {id} ran {ran} ms, less than the 300 ms its simulation takes");
            runs[task.GetProperty("type").GetString()!].Add(ran);
        }
        foreach (var (type, ms) in runs)
        {
            var counts = new long[Histogram.BoundsMs.Count + 1];
            foreach (var m in ms)
            {
                var bucket = 0;
                while (bucket < Histogram.BoundsMs.Count && m > Histogram.BoundsMs[bucket])
                {
                    bucket++;
                }
                counts[bucket]++;
            }
            var run = stats.GetProperty("run_ms").GetProperty(type);
            Assert.Equal((Histogram.Percentile(counts, 0.50), Histogram.Percentile(counts, 0.95), Histogram.Percentile(counts, 0.99)),
                ((long?)Int(run, "p50"), (long?)Int(run, "p95"), (long?)Int(run, "p99")));
            Assert.True(Int(run, "p50") >= 500, $"{type}: a p50 of {Int(run, "p50")} ms for 300 ms of work");
        }
        Assert.Equal(2, Int(stats.GetProperty("workers"), "healthy"));

        var metrics = await (await fleet.Client.GetAsync("/metrics")).Content.ReadAsStringAsync();
        double Grew(string name, params (string, string)[] labels) => Prometheus.Sample(metrics, name, labels) - Prometheus.Sample(metricsBefore, name, labels);
        Assert.Equal(15, Grew("taskmanager_tasks_finished_total", ("type", "llm"), ("outcome", "succeeded")));
        Assert.Equal(5, Grew("taskmanager_tasks_finished_total", ("type", "llm"), ("outcome", "failed")));
        Assert.Equal(15, Grew("taskmanager_tasks_finished_total", ("type", "tts"), ("outcome", "succeeded")));
        Assert.Equal(5, Grew("taskmanager_tasks_finished_total", ("type", "tts"), ("outcome", "canceled")));
        Assert.Equal(20, Grew("taskmanager_tasks_submitted_total", ("type", "llm")));
        Assert.Equal(20, Grew("taskmanager_tasks_submitted_total", ("type", "tts")));
        // The run-time histogram saw the 20 llm attempts.
        Assert.Equal(20, Grew("taskmanager_task_run_milliseconds_count", ("type", "llm")));
    }

    [Fact]
    public async Task PausedType_StaysQueued_WhileOtherTypesRun_AndRunsAfterResume()
    {
        await Admin("/api/admin/queues/sd/pause");
        var held = await fleet.SubmitAsync("""{"type":"sd","input":{"prompt":"wait"}}""");
        var other = await fleet.SubmitAsync("""{"type":"image_to_text","input":{"image":"aGk="}}""");

        await fleet.WaitForStatusAsync(other, s => s == "succeeded", Timeout);
        var waiting = await fleet.GetTaskAsync(held);
        Assert.Equal("queued", waiting.GetProperty("status").GetString());
        Assert.Contains("paused", waiting.GetProperty("waiting_reason").GetString());
        Assert.True((await (await fleet.Client.GetAsync("/api/tasks/stats/metrics")).JsonAsync()).GetProperty("queues").GetProperty("sd").GetProperty("paused").GetBoolean());

        await Admin("/api/admin/queues/sd/resume");

        await fleet.WaitForStatusAsync(held, s => s == "succeeded", Timeout);
    }

    private async Task Admin(string path)
    {
        var response = await fleet.Client.PostAsync(path, null);
        response.EnsureSuccessStatusCode();
    }

    private static long Int(JsonElement element, string name) => element.GetProperty(name).GetInt64();

    private static long Int(JsonElement element) => element.GetInt64();

    private static JsonElement Walk(JsonElement element, params string[] path) =>
        path.Aggregate(element, (e, name) => e.GetProperty(name));
}
