using System.Collections.Concurrent;
using System.Net;
using TaskManager.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TaskManager.Tests.Reliability;

/// <summary>Redis restarted mid-run: nothing acknowledged is lost and the API answers 503, never 500.</summary>
[Trait("Category", "Reliability")]
public sealed class RedisRestartTests(FleetFixture fleet, ITestOutputHelper output) : IClassFixture<FleetFixture>
{
    private const int Tasks = 200;

    [Fact]
    public async Task RedisKilledAndRestartedOnItsAof_AllTwoHundredTasksSucceed_AndTheApiAnswers503Not500()
    {
        fleet.StartWorker("restart-1", capacity: 4);
        fleet.StartWorker("restart-2", capacity: 4);
        var statuses = new ConcurrentBag<HttpStatusCode>();
        using var stop = new CancellationTokenSource();
        // A client reading while Redis is away.
        var reader = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                statuses.Add((await fleet.Client.GetAsync("/api/tasks?limit=1")).StatusCode);
                await Task.Delay(20);
            }
        });

        var ids = new List<string>();
        for (var i = 0; i < Tasks; i++)
        {
            if (i == Tasks / 4)
            {
                fleet.Redis.Kill();
                await Wait.UntilAsync(() => statuses.Contains(HttpStatusCode.ServiceUnavailable), TimeSpan.FromSeconds(20),
                    "the API to answer 503 while Redis is down");
                // The readiness check says why.
                var health = await fleet.Client.GetAsync("/api/health");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
                Assert.NotNull(health.Headers.RetryAfter);
                Assert.Equal("down", (await health.JsonAsync()).GetProperty("redis").GetProperty("status").GetString());
                await fleet.Redis.StartAsync();
            }
            ids.Add(await SubmitUntilAcceptedAsync("""{"type":"llm","input":{"prompt":"task N"},"metadata":{"sim":{"duration_ms":20}}}""".Replace("N", i.ToString(System.Globalization.CultureInfo.InvariantCulture)), statuses));
        }

        var finals = await Task.WhenAll(ids.Select(id => fleet.WaitForStatusAsync(id,
            s => s is "succeeded" or "failed" or "canceled" or "timed_out", TimeSpan.FromSeconds(120))));
        await stop.CancelAsync();
        await reader;

        output.WriteLine($"Answers while Redis restarted: {string.Join(", ", statuses.GroupBy(s => s).Select(g => $"{(int)g.Key} x{g.Count()}"))}");
        Assert.All(finals, t => Assert.Equal("succeeded", t.GetProperty("status").GetString()));
        Assert.Contains(HttpStatusCode.ServiceUnavailable, statuses);
        Assert.True(!statuses.Any(s => (int)s >= 500 && s != HttpStatusCode.ServiceUnavailable),
            "Answers other than 503 of 500 or more:\n" + string.Join('\n', fleet.Api.ServerErrors.Where(e => !e.Contains("-> 503", StringComparison.Ordinal))) +
            "\nThe API's output:\n" + fleet.Api.Output);
    }

    /// <summary>Submits as a well-behaved client does: a 503 is retried after its Retry-After.</summary>
    private async Task<string> SubmitUntilAcceptedAsync(string json, ConcurrentBag<HttpStatusCode> statuses)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var response = await fleet.Client.PostJsonAsync("/api/tasks", json);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                return (await response.JsonAsync()).GetProperty("id").GetString()!;
            }
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.NotNull(response.Headers.RetryAfter);
            Assert.True(DateTime.UtcNow < deadline, "The API did not recover within 30 s.");
            await Task.Delay(response.Headers.RetryAfter.Delta ?? TimeSpan.FromSeconds(1));
        }
    }
}

/// <summary>
/// Redis killed and restarted again and again under concurrent submits and reads: a connection lost
/// with calls in flight must still reach clients as a 503 to retry, never as a 500.
/// </summary>
[Trait("Category", "Reliability")]
public sealed class RedisKilledRepeatedlyTests(FleetFixture fleet, ITestOutputHelper output) : IClassFixture<FleetFixture>
{
    private const int Restarts = 15;

    [Fact]
    public async Task FifteenRestartsUnderSubmitsAndReads_EveryAnswerIsASuccessOrA503WithRetryAfter()
    {
        fleet.StartWorker("repeat-1", capacity: 4);
        fleet.StartWorker("repeat-2", capacity: 4);
        var answers = new ConcurrentBag<(HttpStatusCode Status, bool RetryAfter)>();
        using var stop = new CancellationTokenSource();
        // Three clients submitting and three reading, each again 5 ms after its answer.
        var clients = Enumerable.Range(0, 6).Select(n => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var response = n % 2 == 0
                    ? await fleet.Client.GetAsync("/api/tasks?limit=1")
                    : await fleet.Client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"x"},"metadata":{"sim":{"duration_ms":20}}}""");
                answers.Add((response.StatusCode, response.Headers.RetryAfter is not null));
                await Task.Delay(5);
            }
        })).ToArray();

        // The workload: Redis dies hard (SIGKILL) every second or so, with calls in flight, stays
        // down a moment (calls wait in the client's backlog meanwhile), and comes back on its AOF.
        for (var i = 0; i < Restarts; i++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(700));
            fleet.Redis.Kill();
            await Task.Delay(TimeSpan.FromMilliseconds(300));
            await fleet.Redis.StartAsync();
        }
        // Once Redis is back for good, the API takes work again and the task runs.
        var accepted = await Wait.ForAsync(() => fleet.Client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"after"}}"""),
            r => r.StatusCode == HttpStatusCode.Accepted, TimeSpan.FromSeconds(30), "the API to accept a task after the last restart");
        var after = (await accepted.JsonAsync()).GetProperty("id").GetString()!;
        await stop.CancelAsync();
        await Task.WhenAll(clients);

        output.WriteLine($"Answers over {Restarts} restarts: {string.Join(", ", answers.GroupBy(a => a.Status).Select(g => $"{(int)g.Key} x{g.Count()}"))}");
        Assert.Contains(answers, a => a.Status == HttpStatusCode.ServiceUnavailable);
        Assert.True(answers.All(a => a.Status is HttpStatusCode.OK or HttpStatusCode.Accepted or HttpStatusCode.ServiceUnavailable),
            "Answers other than 200, 202 and 503:\n" + string.Join('\n', fleet.Api.ServerErrors.Where(e => !e.Contains("-> 503", StringComparison.Ordinal))) +
            "\nThe API's output:\n" + fleet.Api.Output);
        Assert.All(answers.Where(a => a.Status == HttpStatusCode.ServiceUnavailable), a => Assert.True(a.RetryAfter));
        Assert.Equal("succeeded", (await fleet.WaitForStatusAsync(after, s => s is "succeeded" or "failed", TimeSpan.FromSeconds(30))).GetProperty("status").GetString());
    }
}

/// <summary>Workers killed and restarted under load: every task ends in a final state, none is lost.</summary>
[Trait("Category", "Reliability")]
public sealed class WorkerCrashSoakTests(FleetFixture fleet, ITestOutputHelper output) : IClassFixture<FleetFixture>
{
    private const int Tasks = 1000;

    [Fact]
    public async Task ThousandTasks_ThreeWorkers_OneKilledAtATime_EveryTaskEndsFinal_NoneLost()
    {
        var workers = Enumerable.Range(1, 3).Select(n => fleet.StartWorker($"soak-{n}", capacity: 2)).ToArray();
        var ids = new ConcurrentBag<string>();
        await Parallel.ForEachAsync(Enumerable.Range(0, Tasks), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            ids.Add(await fleet.SubmitAsync("""{"type":"tts","input":{"text":"soak N"},"max_attempts":5,"metadata":{"sim":{"duration_ms":30}}}""".Replace("N", i.ToString(System.Globalization.CultureInfo.InvariantCulture)))));

        var kills = 0;
        var random = new Random(42);
        var timeout = DateTime.UtcNow.AddMinutes(3);
        while (!await AllFinalAsync(ids))
        {
            Assert.True(DateTime.UtcNow < timeout, "Not every task reached a final state within 3 minutes.");
            // The workload: one worker at a time dies hard (SIGKILL) every few seconds and comes back.
            await Task.Delay(TimeSpan.FromSeconds(2));
            var victim = random.Next(workers.Length);
            workers[victim].Process.Kill(entireProcessTree: true);
            kills++;
            workers[victim] = fleet.StartWorker($"soak-{victim + 1}-{kills}", capacity: 2);
        }

        var tasks = await Task.WhenAll(ids.Select(fleet.GetTaskAsync));
        var byStatus = tasks.GroupBy(t => t.GetProperty("status").GetString()).ToDictionary(g => g.Key!, g => g.Count());
        var ranMoreThanOnce = tasks.Count(t => t.GetProperty("attempt").GetInt32() > 1);
        output.WriteLine($"{Tasks} tasks, {kills} worker kills: {string.Join(", ", byStatus.Select(kv => $"{kv.Key} {kv.Value}"))}; " +
            $"{ranMoreThanOnce} ran more than once.");
        Console.WriteLine($"Soak: {Tasks} tasks, {kills} kills, {ranMoreThanOnce} ran more than once.");

        Assert.Equal(Tasks, tasks.Length);
        Assert.All(tasks, t => Assert.Contains(t.GetProperty("status").GetString(), (string[])["succeeded", "failed"]));
        Assert.True(kills > 0, "No worker was killed: the test did not test anything.");
    }

    private async Task<bool> AllFinalAsync(IEnumerable<string> ids)
    {
        var list = await (await fleet.Client.GetAsync("/api/tasks?status=queued,scheduled,running,canceling&limit=1")).JsonAsync();
        return list.GetProperty("items").GetArrayLength() == 0 && ids.Any();
    }
}
