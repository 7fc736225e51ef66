using System.Net;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// <c>POST /api/workers/{id}/complete</c> on a real API process: many results in one call, each
/// answered at its place, and the next tasks leased in the same script call.
/// </summary>
[Trait("Category", "Api")]
public sealed class CompleteBatchTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private HttpClient Client => fixture.Api.Client;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task ManyResults_AreEachRecorded_AndTheNextTasksComeInTheSameAnswer()
    {
        var ids = await SubmitAsync(5);
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"], capacity: 3);
        var leased = await LeaseAsync(workerId, 3);

        var response = await Client.PostObjectAsync($"/api/workers/{workerId}/complete", new
        {
            results = leased.Select((t, i) => new { task_id = t.Id, lease_token = t.Token, output = new { text = $"answer {i}" } }),
            max_tasks = 3,
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.JsonAsync();
        var results = body.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(leased.Select(t => t.Id), results.Select(r => r.GetProperty("task_id").GetString()!));
        Assert.All(results, r => Assert.Equal((200, "succeeded"), (r.GetProperty("status").GetInt32(), r.GetProperty("task_status").GetString())));
        for (var i = 0; i < 3; i++)
        {
            var task = await (await Client.GetAsync($"/api/tasks/{leased[i].Id}")).JsonAsync();
            Assert.Equal("succeeded", task.GetProperty("status").GetString());
            Assert.Equal($"answer {i}", task.GetProperty("output").GetProperty("text").GetString());
        }
        // The two tasks left were leased in the same call, oldest first.
        var next = body.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("task_id").GetString()).ToArray();
        Assert.Equal(new[] { ids[3], ids[4] }, next);
        foreach (var id in next)
        {
            Assert.Equal("running", (await (await Client.GetAsync($"/api/tasks/{id}")).JsonAsync()).GetProperty("status").GetString());
        }
    }

    [Fact]
    public async Task AStaleOrUnknownResult_IsRefusedAtItsPlace_AndTheOthersAreRecorded()
    {
        await SubmitAsync(2);
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"], capacity: 2);
        var leased = await LeaseAsync(workerId, 2);
        var unknown = new string('0', 31) + "1";

        var response = await Client.PostObjectAsync($"/api/workers/{workerId}/complete", new
        {
            results = new object[]
            {
                new { task_id = leased[0].Id, lease_token = "not-the-token", output = new { } },
                new { task_id = unknown, lease_token = "x", output = new { } },
                new { task_id = leased[1].Id, lease_token = leased[1].Token, output = new { ok = true } },
            },
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.JsonAsync();
        Assert.Equal([409, 404, 200], body.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("status").GetInt32()));
        Assert.Contains("lease token", body.GetProperty("results")[0].GetProperty("detail").GetString());
        Assert.Equal(0, body.GetProperty("tasks").GetArrayLength());
        Assert.Equal("running", (await (await Client.GetAsync($"/api/tasks/{leased[0].Id}")).JsonAsync()).GetProperty("status").GetString());
        Assert.Equal("succeeded", (await (await Client.GetAsync($"/api/tasks/{leased[1].Id}")).JsonAsync()).GetProperty("status").GetString());
    }

    [Fact]
    public async Task TheLastChunksAndLogLines_ComeWithTheResult_BeforeTheFinalStatus()
    {
        await SubmitAsync(1);
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"]);
        var task = (await LeaseAsync(workerId, 1))[0];

        var response = await Client.PostObjectAsync($"/api/workers/{workerId}/complete", new
        {
            results = new[] { new { task_id = task.Id, lease_token = task.Token, output = new { text = "Hello" }, chunks = new[] { "Hel", "lo" }, logs = new[] { "done" } } },
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // The stream ends after the final status, so the whole of it can be read.
        var events = await Client.GetStringAsync($"/api/tasks/{task.Id}/events");
        var kinds = events.Split('\n').Where(l => l.StartsWith("event: ", StringComparison.Ordinal)).Select(l => l[7..]).ToArray();
        Assert.Equal(["status", "status", "chunk", "chunk", "log", "status"], kinds);
        Assert.Contains("\"index\":2,\"text\":\"lo\"", events);
        Assert.EndsWith("\"status\":\"succeeded\"}", events.TrimEnd().Split('\n')[^1]);
    }

    [Fact]
    public async Task AForgottenWorker_StillHasItsResultsRecorded_AndGetsNoNewTasks()
    {
        await SubmitAsync(2);
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"]);
        var task = (await LeaseAsync(workerId, 1))[0];
        // As the scheduler's dead-worker sweep would, long after the worker went silent.
        Assert.True(await fixture.Redis.Db.KeyDeleteAsync("{tm}:worker:" + workerId));

        var response = await Client.PostObjectAsync($"/api/workers/{workerId}/complete", new
        {
            results = new[] { new { task_id = task.Id, lease_token = task.Token, output = new { } } },
            max_tasks = 1,
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.JsonAsync();
        Assert.Equal(200, body.GetProperty("results")[0].GetProperty("status").GetInt32());
        Assert.Equal(0, body.GetProperty("tasks").GetArrayLength());
        Assert.Equal("succeeded", (await (await Client.GetAsync($"/api/tasks/{task.Id}")).JsonAsync()).GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("""{"results":[{"task_id":"0123456789abcdef0123456789abcdef","lease_token":"t","output":{},"logs":[null]}]}""", "results[0].logs")]
    [InlineData("""{"results":[]}""", "results")]
    [InlineData("""{"results":[{"task_id":"nope","lease_token":"t","output":{}}]}""", "results[0].task_id")]
    [InlineData("""{"results":[{"task_id":"0123456789abcdef0123456789abcdef","output":{}}]}""", "results[0].lease_token")]
    [InlineData("""{"results":[{"task_id":"0123456789abcdef0123456789abcdef","lease_token":"t","output":"text"}]}""", "results[0].output")]
    [InlineData("""{"results":[{"task_id":"0123456789abcdef0123456789abcdef","lease_token":"t","output":{}}],"max_tasks":101}""", "max_tasks")]
    public async Task ABadBatch_Answers400_NamingTheField(string json, string field)
    {
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"]);

        var response = await Client.PostJsonAsync($"/api/workers/{workerId}/complete", json);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True((await response.JsonAsync()).GetProperty("errors").TryGetProperty(field, out _), field);
    }

    [Fact]
    public async Task TheResultsAndTheNextLease_AreOneScriptCall()
    {
        await SubmitAsync(4);
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"], capacity: 2);
        var first = await LeaseAsync(workerId, 2);
        // Warm: the first call of a script sends its text once.
        var warm = await Client.PostObjectAsync($"/api/workers/{workerId}/complete", new
        {
            results = new[] { new { task_id = first[0].Id, lease_token = first[0].Token, output = new { } } },
        });
        Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        await using var monitor = await RedisMonitor.StartAsync(fixture.Redis);

        JsonElement body = default;
        var commands = await monitor.ClientCommandsDuringAsync(fixture.Redis.Db, async () =>
            body = await (await Client.PostObjectAsync($"/api/workers/{workerId}/complete", new
            {
                results = new[] { new { task_id = first[1].Id, lease_token = first[1].Token, output = new { } } },
                max_tasks = 2,
            })).JsonAsync());

        Assert.Equal(2, body.GetProperty("tasks").GetArrayLength());
        Assert.True(commands.Count == 1, string.Join("\n", commands));
        Assert.Contains("_complete_batch\"", commands[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheHappyPathInBatches_CostsAtMostSixRedisCommandsPerTask()
    {
        // INFO commandstats counts every command, those inside scripts too: the cost per task of
        // submitting, leasing and completing 320 tasks in batches, as a busy worker does.
        await SubmitAsync(32);
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"], capacity: 32);
        var warm = await LeaseAsync(workerId, 32);
        await CompleteAsync(workerId, warm, maxTasks: 0);
        var before = await CommandCountAsync();

        const int Tasks = 320;
        await SubmitAsync(Tasks);
        var running = await LeaseAsync(workerId, 32);
        var done = 0;
        while (running.Length > 0)
        {
            done += running.Length;
            running = await CompleteAsync(workerId, running, maxTasks: 32);
        }
        var perTask = (await CommandCountAsync() - before) / (double)Tasks;

        Assert.Equal(Tasks, done);
        Assert.True(perTask <= 6, $"{perTask:F2} Redis commands per task");
    }

    private async Task<(string Id, string Token)[]> CompleteAsync(string workerId, (string Id, string Token)[] tasks, int maxTasks)
    {
        var response = await Client.PostObjectAsync($"/api/workers/{workerId}/complete", new
        {
            results = tasks.Select(t => new { task_id = t.Id, lease_token = t.Token, output = new { } }),
            max_tasks = maxTasks,
        });
        var body = await response.JsonAsync();
        Assert.All(body.GetProperty("results").EnumerateArray(), r => Assert.Equal(200, r.GetProperty("status").GetInt32()));
        return body.GetProperty("tasks").EnumerateArray()
            .Select(t => (t.GetProperty("task_id").GetString()!, t.GetProperty("lease_token").GetString()!)).ToArray();
    }

    /// <summary>The sum of <c>calls</c> over INFO commandstats, less the INFO calls themselves.</summary>
    private async Task<long> CommandCountAsync()
    {
        var info = (string)(await fixture.Redis.Db.ExecuteAsync("INFO", "commandstats"))!;
        long total = 0;
        foreach (var line in info.Split('\n', StringSplitOptions.TrimEntries))
        {
            if (line.StartsWith("cmdstat_", StringComparison.Ordinal) && !line.StartsWith("cmdstat_info:", StringComparison.Ordinal))
            {
                var calls = line[(line.IndexOf("calls=", StringComparison.Ordinal) + 6)..];
                total += long.Parse(calls[..calls.IndexOf(',', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return total;
    }

    private async Task<string[]> SubmitAsync(int count)
    {
        var tasks = Enumerable.Range(0, count).Select(i => new { type = "llm", input = new { prompt = $"task {i}" } });
        var body = await (await Client.PostObjectAsync("/api/tasks/batch", new { tasks })).JsonAsync();
        return body.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("task").GetProperty("id").GetString()!).ToArray();
    }

    private async Task<(string Id, string Token)[]> LeaseAsync(string workerId, int maxTasks)
    {
        var lease = await (await Client.PostObjectAsync($"/api/workers/{workerId}/lease?wait_seconds=0", new { max_tasks = maxTasks })).JsonAsync();
        return lease.GetProperty("tasks").EnumerateArray()
            .Select(t => (t.GetProperty("task_id").GetString()!, t.GetProperty("lease_token").GetString()!)).ToArray();
    }
}
