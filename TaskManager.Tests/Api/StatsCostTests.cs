using System.Diagnostics;
using Microsoft.Extensions.Options;
using TaskManager.Api;
using TaskManager.Api.Domain;
using TaskManager.Api.Storage;
using TaskManager.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TaskManager.Tests.Api;

/// <summary>The stats endpoint costs the same with 100 and with 100,000 final tasks stored.</summary>
[Trait("Category", "Api")]
[Collection(TimingCollection.Name)]
public sealed class StatsCostTests(RedisServer redis, ITestOutputHelper output) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task StatsEndpoint_AnswersInTheSameTime_With100And100000FinalTasks()
    {
        await redis.FlushAsync();
        await using var api = await ApiProcess.StartAsync(redis);
        var store = TestStore.Create(redis.Connection, "{tm}:", TimeProvider.System);

        await SeedFinalTasksAsync(store, 100);
        var (smallCommands, smallMs) = await MeasureAsync(api);
        await SeedFinalTasksAsync(store, 100_000 - 100);
        var (largeCommands, largeMs) = await MeasureAsync(api);

        var summary = $"Stats cost: 100 tasks: {smallCommands} Redis commands, median {smallMs:0.00} ms; 100,000 tasks: {largeCommands} commands, median {largeMs:0.00} ms";
        output.WriteLine(summary);
        Console.WriteLine(summary);
        var stats = await (await api.Client.GetAsync("/api/tasks/stats/metrics")).JsonAsync();
        Assert.Equal(100_000, stats.GetProperty("by_status").GetProperty("canceled").GetInt64());
        // The same work in Redis, command for command, whatever the number of tasks...
        Assert.Equal(smallCommands, largeCommands);
        // ...and the same time within noise (a loose bound: this is a check, not a benchmark).
        Assert.True(largeMs <= (smallMs * 2) + 3, $"median {largeMs:0.00} ms with 100,000 tasks against {smallMs:0.00} ms with 100");
    }

    private async Task<(int Commands, double MedianMs)> MeasureAsync(ApiProcess api)
    {
        for (var i = 0; i < 10; i++)
        {
            (await api.Client.GetAsync("/api/tasks/stats/metrics")).EnsureSuccessStatusCode();
        }
        var times = new List<double>();
        for (var i = 0; i < 40; i++)
        {
            var clock = Stopwatch.StartNew();
            (await api.Client.GetAsync("/api/tasks/stats/metrics")).EnsureSuccessStatusCode();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }
        await using var monitor = await RedisMonitor.StartAsync(redis);
        var commands = await monitor.CommandsDuringAsync(redis.Db, async () =>
            (await api.Client.GetAsync("/api/tasks/stats/metrics")).EnsureSuccessStatusCode());
        times.Sort();
        return (commands.Count, times[times.Count / 2]);
    }

    /// <summary>Submits and cancels tasks through the real scripts, many at a time.</summary>
    private static async Task SeedFinalTasksAsync(TestStore store, int count)
    {
        var request = new TaskRequest(TaskTypes.Tts, """{"text":"x"}""", null, 5, 300, 3, null, null);
        var options = new ParallelOptions { MaxDegreeOfParallelism = 64 };
        await Parallel.ForEachAsync(Enumerable.Range(0, count), options, async (_, _) =>
        {
            var submitted = await store.Queue.SubmitAsync(request, null, Credentials.TenantA);
            await store.Queue.CancelAsync(submitted.Id);
        });
    }
}
