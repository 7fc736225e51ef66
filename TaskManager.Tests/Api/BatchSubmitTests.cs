using System.Net;
using System.Text;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// <c>POST /api/tasks/batch</c> on a real API process: each request of a batch is validated on its
/// own, the valid ones are stored, and the answer gives each request's fate in order.
/// </summary>
[Trait("Category", "Api")]
public sealed class BatchSubmitTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private HttpClient Client => fixture.Api.Client;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Batch_CreatesTheValidTasks_AndRefusesEachBadOne_AtItsPlace()
    {
        var response = await Client.PostJsonAsync("/api/tasks/batch", """
            {"tasks": [
              {"type":"llm","input":{"prompt":"first"}},
              {"type":"llm"},
              {"type":"tts","input":{"text":"third"},"priority":9,"metadata":{"job":"nightly"}},
              {"type":"video","input":{}},
              {"type":"sd","input":{"prompt":"fifth","steps":0}}
            ]}
            """);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.JsonAsync();
        Assert.Equal(2, body.GetProperty("accepted").GetInt32());
        Assert.Equal(3, body.GetProperty("refused").GetInt32());
        var items = body.GetProperty("items").EnumerateArray().ToArray();
        Assert.Equal([0, 1, 2, 3, 4], items.Select(i => i.GetProperty("index").GetInt32()));
        Assert.Equal([202, 400, 202, 400, 400], items.Select(i => i.GetProperty("status").GetInt32()));

        // Each refused request carries the ProblemDetails it would have had alone, naming the field.
        Assert.Contains("input", items[1].GetProperty("problem").GetProperty("errors").EnumerateObject().Select(p => p.Name));
        Assert.Contains("type", items[3].GetProperty("problem").GetProperty("errors").EnumerateObject().Select(p => p.Name));
        Assert.Contains("input.steps", items[4].GetProperty("problem").GetProperty("errors").EnumerateObject().Select(p => p.Name));
        Assert.All(new[] { items[1], items[3], items[4] }, i =>
        {
            Assert.Equal(400, i.GetProperty("problem").GetProperty("status").GetInt32());
            Assert.False(i.TryGetProperty("task", out _));
        });

        // The created tasks are stored as the single endpoint would store them.
        foreach (var (item, type, prompt) in new[] { (items[0], "llm", "first"), (items[2], "tts", "third") })
        {
            var created = item.GetProperty("task");
            var id = created.GetProperty("id").GetString()!;
            var stored = await (await Client.GetAsync($"/api/tasks/{id}")).JsonAsync();
            Assert.Equal(type, stored.GetProperty("type").GetString());
            Assert.Equal("queued", stored.GetProperty("status").GetString());
            Assert.Equal(prompt, stored.GetProperty("input").GetProperty(type == "llm" ? "prompt" : "text").GetString());
        }
        var third = await (await Client.GetAsync($"/api/tasks/{items[2].GetProperty("task").GetProperty("id").GetString()}")).JsonAsync();
        Assert.Equal(9, third.GetProperty("priority").GetInt32());
        Assert.Equal("nightly", third.GetProperty("metadata").GetProperty("job").GetString());
        var listed = await (await Client.GetAsync("/api/tasks?limit=100")).JsonAsync();
        Assert.Equal(2, listed.GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task AThousandTasks_AreAllStored_InOrder_AndLeasedByPriorityThenAge()
    {
        var tasks = Enumerable.Range(0, 1000).Select(i => new { type = "llm", input = new { prompt = $"task {i}" }, priority = i == 999 ? 9 : 5 });

        var response = await Client.PostObjectAsync("/api/tasks/batch", new { tasks });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var items = (await response.JsonAsync()).GetProperty("items").EnumerateArray().ToArray();
        Assert.Equal(1000, items.Length);
        Assert.All(items, i => Assert.Equal(202, i.GetProperty("status").GetInt32()));
        var ids = items.Select(i => i.GetProperty("task").GetProperty("id").GetString()!).ToArray();
        Assert.Equal(1000, ids.Distinct().Count());
        Assert.Equal(ids.Order(StringComparer.Ordinal), ids);

        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["llm"], capacity: 3);
        var lease = await (await Client.PostObjectAsync($"/api/workers/{workerId}/lease?wait_seconds=0", new { max_tasks = 3 })).JsonAsync();
        var leased = lease.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("task_id").GetString()!).ToArray();
        Assert.Equal([ids[999], ids[0], ids[1]], leased);
    }

    [Theory]
    [InlineData("[]", "$")]
    [InlineData("""{"tasks":{"type":"llm"}}""", "tasks")]
    [InlineData("""{"tasks":[]}""", "tasks")]
    [InlineData("""{"task":[{"type":"llm","input":{"prompt":"x"}}]}""", "task")]
    [InlineData("""{"tasks":[{"type":"llm","input":{"prompt":"x"}}""", "$")]
    public async Task ABodyThatIsNotABatch_Answers400_NamingTheField_AndStoresNothing(string json, string field)
    {
        var response = await Client.PostJsonAsync("/api/tasks/batch", json);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.JsonAsync();
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
        Assert.Equal(0, (await (await Client.GetAsync("/api/tasks")).JsonAsync()).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task MoreThanAThousandTasks_Answers400_AndStoresNothing()
    {
        var tasks = Enumerable.Range(0, 1001).Select(_ => new { type = "sd", input = new { prompt = "x" } });

        var response = await Client.PostObjectAsync("/api/tasks/batch", new { tasks });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.JsonAsync();
        Assert.Contains("1001", problem.GetProperty("errors").GetProperty("tasks")[0].GetString());
        Assert.Equal(0, (await (await Client.GetAsync("/api/tasks")).JsonAsync()).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task ATaskLargerThanTheSingleRequestLimit_IsRefused413_WhileTheOthersAreCreated()
    {
        // The API's limit for one task request is 1 MiB by default; a batch may be larger.
        var big = new string('a', 1024 * 1024);
        var json = """{"tasks":[{"type":"llm","input":{"prompt":"small"}},{"type":"tts","input":{"text":"BIG"}}]}""".Replace("BIG", big, StringComparison.Ordinal);

        var response = await Client.PostJsonAsync("/api/tasks/batch", json);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var items = (await response.JsonAsync()).GetProperty("items");
        Assert.Equal(202, items[0].GetProperty("status").GetInt32());
        Assert.Equal(413, items[1].GetProperty("status").GetInt32());
        Assert.Contains("larger than", items[1].GetProperty("problem").GetProperty("detail").GetString());
    }

    [Fact]
    public async Task AnIdempotencyKey_IsRefused_ForABatch()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/tasks/batch")
        {
            Content = new StringContent("""{"tasks":[{"type":"llm","input":{"prompt":"x"}}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Idempotency-Key", "nightly-1");

        var response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True((await response.JsonAsync()).GetProperty("errors").TryGetProperty("Idempotency-Key", out _));
        Assert.Equal(0, (await (await Client.GetAsync("/api/tasks")).JsonAsync()).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task ABodyOverTheBatchLimit_Answers413()
    {
        await using var api = await ApiProcess.StartAsync(fixture.Redis, environment: new Dictionary<string, string>
        {
            ["TaskManager__MaxBatchRequestBytes"] = "4096",
        });
        var tasks = Enumerable.Range(0, 100).Select(i => new { type = "llm", input = new { prompt = $"a prompt long enough to add up {i}" } });

        var response = await api.Client.PostObjectAsync("/api/tasks/batch", new { tasks });

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task TheTenantsQueueCap_HoldsAcrossTheBatch()
    {
        await using var api = await ApiProcess.StartAsync(fixture.Redis, environment: new Dictionary<string, string>
        {
            ["TaskManager__TenantQueueCap"] = "3",
        });
        Assert.Equal(HttpStatusCode.Accepted, (await api.Client.PostJsonAsync("/api/tasks", """{"type":"sd","input":{"prompt":"x"}}""")).StatusCode);
        var tasks = Enumerable.Range(0, 4).Select(i => new { type = "llm", input = new { prompt = $"task {i}" } });

        var response = await api.Client.PostObjectAsync("/api/tasks/batch", new { tasks });

        var body = await response.JsonAsync();
        Assert.Equal((2, 2), (body.GetProperty("accepted").GetInt32(), body.GetProperty("refused").GetInt32()));
        Assert.Equal([202, 202, 429, 429], body.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("status").GetInt32()));
        Assert.Equal(3, (await (await api.Client.GetAsync("/api/tasks?status=queued")).JsonAsync()).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task ABatchWakesAWaitingLease()
    {
        var workerId = await HotPathTests.RegisterWorkerAsync(Client, ["tts"]);
        await using var monitor = await RedisMonitor.StartAsync(fixture.Redis);
        var lease = Client.PostAsync($"/api/workers/{workerId}/lease?wait_seconds=20", null);
        // The lease script ran and found nothing: the lease is now waiting for a notification.
        await monitor.WaitForLineAsync(line => line.Contains(workerId) && !line.Contains(" lua]"), TimeSpan.FromSeconds(10));

        var batch = await (await Client.PostObjectAsync("/api/tasks/batch",
            new { tasks = new[] { new { type = "tts", input = new { text = "wake up" } } } })).JsonAsync();

        var response = await lease.WaitAsync(TimeSpan.FromSeconds(25));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var leased = (await response.JsonAsync()).GetProperty("tasks")[0].GetProperty("task_id").GetString();
        Assert.Equal(batch.GetProperty("items")[0].GetProperty("task").GetProperty("id").GetString(), leased);
    }
}
