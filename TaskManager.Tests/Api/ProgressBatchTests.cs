using System.Net;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// <c>POST /api/workers/{id}/progress</c> on a real API process: the progress reports of many
/// running tasks in one call and one script call, each answered at its place, as a worker that
/// streams many tasks at once sends them.
/// </summary>
[Trait("Category", "Api")]
public sealed class ProgressBatchTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private HttpClient Client => fixture.Api.Client;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task ManyReports_BecomeTheirTasksEvents_InOrder_InOneScriptCall()
    {
        var (workerId, tasks) = await RunningAsync(3);
        // Warm: the first call of a script sends its text once.
        Assert.Equal(HttpStatusCode.OK, (await ReportAsync(workerId, tasks.Select(t => new { task_id = t.Id, lease_token = t.Token, chunks = new[] { "a" } }))).StatusCode);
        await using var monitor = await RedisMonitor.StartAsync(fixture.Redis);

        JsonElement body = default;
        var commands = await monitor.ClientCommandsDuringAsync(fixture.Redis.Db, async () =>
            body = await (await ReportAsync(workerId, tasks.Select((t, i) => new
            {
                task_id = t.Id,
                lease_token = t.Token,
                progress = 0.5,
                message = $"half of {i}",
                chunks = new[] { $"b{i}", $"c{i}" },
                logs = new[] { $"log {i}" },
            }))).JsonAsync());

        Assert.True(commands.Count == 1, string.Join("\n", commands));
        Assert.Contains("_progress_batch\"", commands[0], StringComparison.Ordinal);
        var results = body.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(tasks.Select(t => t.Id), results.Select(r => r.GetProperty("task_id").GetString()!));
        Assert.All(results, r => Assert.Equal((200, false), (r.GetProperty("status").GetInt32(), r.GetProperty("cancel").GetBoolean())));

        foreach (var (id, _) in tasks)
        {
            Assert.Equal(0.5, (await (await Client.GetAsync($"/api/tasks/{id}")).JsonAsync()).GetProperty("progress").GetDouble());
        }
        await CompleteAsync(workerId, tasks);
        for (var i = 0; i < tasks.Length; i++)
        {
            // The stream ends after the final status, so the whole of it can be read.
            var events = await Client.GetStringAsync($"/api/tasks/{tasks[i].Id}/events");
            var kinds = events.Split('\n').Where(l => l.StartsWith("event: ", StringComparison.Ordinal)).Select(l => l[7..]).ToArray();
            Assert.Equal(["status", "status", "chunk", "progress", "chunk", "chunk", "log", "status"], kinds);
            Assert.Contains($"\"index\":3,\"text\":\"c{i}\"", events);
            Assert.Contains($"\"message\":\"half of {i}\"", events);
        }
    }

    [Fact]
    public async Task AStaleUnknownOrCanceledTask_IsAnsweredAtItsPlace_AndTheOthersAreRecorded()
    {
        var (workerId, tasks) = await RunningAsync(3);
        var cancel = await Client.PostAsync($"/api/tasks/{tasks[2].Id}/cancel", null);
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        var unknown = new string('0', 31) + "1";

        var response = await ReportAsync(workerId, new object[]
        {
            new { task_id = tasks[0].Id, lease_token = "not-the-token", chunks = new[] { "x" } },
            new { task_id = unknown, lease_token = "x", chunks = new[] { "x" } },
            new { task_id = tasks[1].Id, lease_token = tasks[1].Token, chunks = new[] { "kept" } },
            new { task_id = tasks[2].Id, lease_token = tasks[2].Token, chunks = new[] { "late" } },
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var results = (await response.JsonAsync()).GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal([409, 404, 200, 200], results.Select(r => r.GetProperty("status").GetInt32()));
        Assert.Contains("lease token", results[0].GetProperty("detail").GetString());
        // The canceled task's worker is told to stop it; the others go on.
        Assert.Equal([false, false, false, true], results.Select(r => r.GetProperty("cancel").GetBoolean()));
        await CompleteAsync(workerId, tasks[..2]);
        Assert.DoesNotContain("\"text\":\"x\"", await Client.GetStringAsync($"/api/tasks/{tasks[0].Id}/events"));
        Assert.Contains("\"text\":\"kept\"", await Client.GetStringAsync($"/api/tasks/{tasks[1].Id}/events"));
    }

    [Theory]
    [InlineData("""{"reports":[]}""", "reports")]
    [InlineData("""{}""", "reports")]
    [InlineData("""{"reports":[null]}""", "reports[0]")]
    [InlineData("""{"reports":[{"task_id":"nope","lease_token":"t"}]}""", "reports[0].task_id")]
    [InlineData("""{"reports":[{"task_id":"0123456789abcdef0123456789abcdef"}]}""", "reports[0].lease_token")]
    [InlineData("""{"reports":[{"task_id":"0123456789abcdef0123456789abcdef","lease_token":"t","progress":2}]}""", "reports[0].progress")]
    [InlineData("""{"reports":[{"task_id":"0123456789abcdef0123456789abcdef","lease_token":"t","chunks":[null]}]}""", "reports[0].chunks")]
    [InlineData("""{"reports":[{"task_id":"0123456789abcdef0123456789abcdef","lease_token":"t"},{"task_id":"0123456789abcdef0123456789abcdef","lease_token":"t"}]}""", "reports")]
    public async Task ABadBatch_Answers400_NamingTheField(string json, string field)
    {
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"]);

        var response = await Client.PostJsonAsync($"/api/workers/{workerId}/progress", json);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True((await response.JsonAsync()).GetProperty("errors").TryGetProperty(field, out _), field);
    }

    [Fact]
    public async Task MoreReportsThanACallTakes_AreRefusedWith400()
    {
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"]);
        var reports = Enumerable.Range(0, 1001).Select(i => new { task_id = i.ToString("x32", System.Globalization.CultureInfo.InvariantCulture), lease_token = "t" });

        var response = await ReportAsync(workerId, reports);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("1 to 1000 reports", (await response.JsonAsync()).GetProperty("errors").GetProperty("reports")[0].GetString());
    }

    private Task<HttpResponseMessage> ReportAsync(string workerId, IEnumerable<object> reports) =>
        Client.PostObjectAsync($"/api/workers/{workerId}/progress", new { reports });

    private async Task<(string WorkerId, (string Id, string Token)[] Tasks)> RunningAsync(int count)
    {
        var tasks = Enumerable.Range(0, count).Select(i => new { type = "llm", input = new { prompt = $"task {i}" } });
        Assert.True((await Client.PostObjectAsync("/api/tasks/batch", new { tasks })).IsSuccessStatusCode);
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"], capacity: count);
        var lease = await (await Client.PostObjectAsync($"/api/workers/{workerId}/lease?wait_seconds=0", new { max_tasks = count })).JsonAsync();
        var leased = lease.GetProperty("tasks").EnumerateArray()
            .Select(t => (t.GetProperty("task_id").GetString()!, t.GetProperty("lease_token").GetString()!)).ToArray();
        Assert.Equal(count, leased.Length);
        return (workerId, leased);
    }

    private async Task CompleteAsync(string workerId, (string Id, string Token)[] tasks)
    {
        var response = await Client.PostObjectAsync($"/api/workers/{workerId}/complete", new
        {
            results = tasks.Select(t => new { task_id = t.Id, lease_token = t.Token, output = new { } }),
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
