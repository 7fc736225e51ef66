using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// The client API and the worker protocol over real HTTP: status codes, headers, the JSON a
/// client reads, and a ProblemDetails for every bad request.
/// </summary>
[Trait("Category", "Api")]
public sealed class TasksApiTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private HttpClient Client => fixture.Api.Client;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    // ---- submit and get ----

    [Fact]
    public async Task Submit_Answers202_WithLocation_AndTheTaskInSnakeCase()
    {
        var response = await Client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"hello"}}""");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var task = await response.JsonAsync();
        var id = task.GetProperty("id").GetString()!;
        Assert.Matches("^[0-9a-f]{32}$", id);
        // Absolute, as the client reached the API (behind a gateway: as it reached the gateway).
        var self = new Uri(fixture.Api.BaseAddress, $"/api/tasks/{id}").ToString();
        Assert.Equal(self, response.Headers.Location?.OriginalString);
        Assert.Equal("llm", task.GetProperty("type").GetString());
        Assert.Equal("queued", task.GetProperty("status").GetString());
        Assert.Equal(5, task.GetProperty("priority").GetInt32());
        AssertJson("""{"prompt":"hello","max_tokens":256,"stream":false}""", task.GetProperty("input"));
        Assert.Equal(0, task.GetProperty("attempt").GetInt32());
        Assert.Equal(3, task.GetProperty("max_attempts").GetInt32());
        Assert.Equal(300, task.GetProperty("timeout_seconds").GetInt32());
        var createdAt = task.GetProperty("created_at").GetString()!;
        Assert.EndsWith("Z", createdAt, StringComparison.Ordinal);
        Assert.True(DateTimeOffset.TryParse(createdAt, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out _), createdAt);
        var urls = task.GetProperty("urls");
        Assert.Equal(self, urls.GetProperty("get").GetString());
        Assert.Equal($"{self}/cancel", urls.GetProperty("cancel").GetString());
        Assert.Equal($"{self}/events", urls.GetProperty("events").GetString());
        Assert.All(task.EnumerateObject(), p => Assert.Matches("^[a-z]+(_[a-z]+)*$", p.Name));
    }

    [Fact]
    public async Task Get_AtTheLocation_ReturnsTheTask_WithItsQueuePosition()
    {
        await SubmitAsync("""{"type":"tts","input":{"text":"first"}}""");
        var submitted = await Client.PostJsonAsync("/api/tasks", """{"type":"tts","priority":2,"input":{"text":"hello","speed":1.5},"metadata":{"user":"u1"}}""");

        var response = await Client.GetAsync(submitted.Headers.Location);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var task = await response.JsonAsync();
        Assert.Equal((await submitted.JsonAsync()).GetProperty("id").GetString(), task.GetProperty("id").GetString());
        Assert.Equal("queued", task.GetProperty("status").GetString());
        Assert.Equal(2, task.GetProperty("priority").GetInt32());
        Assert.Equal(2, task.GetProperty("queue_position").GetInt32());
        AssertJson("""{"text":"hello","speed":1.5,"format":"wav"}""", task.GetProperty("input"));
        AssertJson("""{"user":"u1"}""", task.GetProperty("metadata"));
    }

    // ---- bad input ----

    [Theory]
    [InlineData("""{"type":"llm","input":{"prompt":"hi","max_tokens":"many"}}""", "input.max_tokens")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"priority":10}""", "priority")]
    [InlineData("""{"type":"video","input":{"prompt":"hi"}}""", "type")]
    [InlineData("""{"type":"llm"}""", "input")]
    [InlineData("""{"type":"llm","input":"hi"}""", "input")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"colour":"red"}""", "colour")]
    [InlineData("""{"type":"sd","input":{"prompt":"x","width":100,"steps":0},"max_attempts":0}""", "input.width", "input.steps", "max_attempts")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"}""", "$")]
    [InlineData("""[{"type":"llm","input":{"prompt":"hi"}}]""", "$")]
    [InlineData("""{"type":"llm","type":"sd","input":{"prompt":"hi"}}""", "$")]
    [InlineData("", "$")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"start_deadline_seconds":0}""", "start_deadline_seconds")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"start_deadline_seconds":86401}""", "start_deadline_seconds")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"webhook_events_filter":["completed"]}""", "webhook_events_filter")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"webhook":"https://h.example/x","webhook_events_filter":["done"]}""", "webhook_events_filter")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"webhook":"https://h.example/x","webhook_events_filter":[]}""", "webhook_events_filter")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"webhook":"https://h.example/x","webhook_events_filter":["start","start"]}""", "webhook_events_filter")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"webhook":"https://user:secret@h.example/x"}""", "webhook")]
    [InlineData("""{"type":"llm","input":{"prompt":"hi"},"webhook":"ftp://h.example/x"}""", "webhook")]
    public async Task Submit_WithBadInput_Answers400_NamingEachBadField(string body, params string[] fields)
    {
        var response = await Client.PostJsonAsync("/api/tasks", body);

        var problem = await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        var errors = problem.GetProperty("errors").EnumerateObject().Select(e => e.Name).Order(StringComparer.Ordinal);
        Assert.Equal(fields.Order(StringComparer.Ordinal), errors);
        Assert.Empty(await ListIdsAsync(""));
    }

    [Fact]
    public async Task Submit_WithInvalidUtf8_Answers400()
    {
        var bytes = Encoding.UTF8.GetBytes("""{"type":"llm","input":{"prompt":"hi XX"}}""");
        bytes[Array.IndexOf(bytes, (byte)'X')] = 0xFF;
        bytes[Array.LastIndexOf(bytes, (byte)'X')] = 0xFE;
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        var response = await Client.PostAsync("/api/tasks", content);

        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Empty(await ListIdsAsync(""));
    }

    [Theory]
    [InlineData("""{"type":"llm","input":{"prompt":"\ud800"}}""")]
    [InlineData("""{"type":"llm","input":{"prompt":"x"},"model":"\udc00"}""")]
    [InlineData("""{"type":"llm","input":{"prompt":"x"},"\ud800":1}""")]
    public async Task Submit_WithALoneSurrogateAnywhereInTheBody_Answers400(string body) =>
        await AssertProblemAsync(await Client.PostJsonAsync("/api/tasks", body), HttpStatusCode.BadRequest);

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/xml")]
    [InlineData("application/x-www-form-urlencoded")]
    public async Task Submit_WithANonJsonContentType_Answers415(string contentType)
    {
        var response = await Client.PostAsync("/api/tasks",
            new StringContent("""{"type":"llm","input":{"prompt":"hi"}}""", Encoding.UTF8, contentType));

        await AssertProblemAsync(response, HttpStatusCode.UnsupportedMediaType);
        Assert.Empty(await ListIdsAsync(""));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Submit_WithABodyOver1MiB_Answers413(bool withContentLength)
    {
        var json = "{\"type\":\"llm\",\"input\":{\"prompt\":\"" + new string('a', 1024 * 1024) + "\"}}";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/tasks")
        {
            Content = new StringContent(json, Encoding.UTF8, "application/json"),
        };
        // Chunked: the limit must hold while the body is read, not only against Content-Length.
        request.Headers.TransferEncodingChunked = !withContentLength;

        var response = await Client.SendAsync(request);

        await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Empty(await ListIdsAsync(""));
    }

    // ---- get, cancel, delete ----

    [Theory]
    [InlineData("0190c0a0b0c0d0e0f000000000000000")]
    [InlineData("not-a-task-id")]
    [InlineData("0190C0A0B0C0D0E0F000000000000000")]
    [InlineData("0190c0a0b0c0d0e0f0000000000000001")]
    public async Task UnknownOrMalformedId_Answers404_ForGetCancelAndDelete(string id)
    {
        await AssertProblemAsync(await Client.GetAsync($"/api/tasks/{id}"), HttpStatusCode.NotFound);
        await AssertProblemAsync(await Client.PatchAsync($"/api/tasks/{id}/cancel", null), HttpStatusCode.NotFound);
        await AssertProblemAsync(await Client.DeleteAsync($"/api/tasks/{id}"), HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("PATCH")]
    [InlineData("POST")]
    public async Task Cancel_OfAQueuedTask_Answers202Canceled_AndAgain409(string method)
    {
        var id = await SubmitAsync();

        var first = await Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), $"/api/tasks/{id}/cancel"));
        var second = await Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), $"/api/tasks/{id}/cancel"));

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        var task = await first.JsonAsync();
        Assert.Equal(id, task.GetProperty("id").GetString());
        Assert.Equal("canceled", task.GetProperty("status").GetString());
        await AssertProblemAsync(second, HttpStatusCode.Conflict);
        Assert.Equal("canceled", (await GetTaskAsync(id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Delete_OfAQueuedTask_Answers409_AndKeepsIt()
    {
        var id = await SubmitAsync();

        var response = await Client.DeleteAsync($"/api/tasks/{id}");

        await AssertProblemAsync(response, HttpStatusCode.Conflict);
        Assert.Equal("queued", (await GetTaskAsync(id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Delete_OfACanceledTask_Answers204_ThenItIsGone()
    {
        var id = await SubmitAsync();
        Assert.Equal(HttpStatusCode.Accepted, (await Client.PatchAsync($"/api/tasks/{id}/cancel", null)).StatusCode);

        var response = await Client.DeleteAsync($"/api/tasks/{id}");

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        await AssertProblemAsync(await Client.GetAsync($"/api/tasks/{id}"), HttpStatusCode.NotFound);
        await AssertProblemAsync(await Client.DeleteAsync($"/api/tasks/{id}"), HttpStatusCode.NotFound);
        Assert.DoesNotContain(id, await ListIdsAsync(""));
    }

    [Fact]
    public async Task Cancel_OfARunningTask_IsCanceling_UntilTheWorkerStopsIt()
    {
        var worker = await RegisterAsync(["llm"]);
        var id = await SubmitAsync();
        var leased = await LeaseAsync(worker);

        var cancel = await Client.PatchAsync($"/api/tasks/{id}/cancel", null);

        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        Assert.Equal("canceling", (await cancel.JsonAsync()).GetProperty("status").GetString());
        Assert.Equal("canceling", (await GetTaskAsync(id)).GetProperty("status").GetString());
        // The worker learns of it from its heartbeat, stops the task and reports it canceled.
        var heartbeat = await Client.PostObjectAsync($"/api/workers/{worker}/heartbeat",
            new { running = new[] { new { task_id = id, lease_token = leased.Token } } });
        Assert.Equal(HttpStatusCode.OK, heartbeat.StatusCode);
        Assert.Equal([id], (await heartbeat.JsonAsync()).GetProperty("cancel").EnumerateArray().Select(e => e.GetString()));
        var fail = await Client.PostObjectAsync($"/api/workers/{worker}/tasks/{id}/fail",
            new { lease_token = leased.Token, error = new { code = "canceled", message = "stopped" }, retryable = false });
        Assert.Equal(HttpStatusCode.OK, fail.StatusCode);
        Assert.Equal("canceled", (await fail.JsonAsync()).GetProperty("status").GetString());
        Assert.Equal("canceled", (await GetTaskAsync(id)).GetProperty("status").GetString());
    }

    // ---- list ----

    [Fact]
    public async Task List_ShowsNewestFirst_FilteredByStatusAndType()
    {
        var llm1 = await SubmitAsync("""{"type":"llm","input":{"prompt":"1"}}""");
        var sd1 = await SubmitAsync("""{"type":"sd","input":{"prompt":"2"}}""");
        var llm2 = await SubmitAsync("""{"type":"llm","input":{"prompt":"3"}}""");
        var tts1 = await SubmitAsync("""{"type":"tts","input":{"text":"4"}}""");
        await Client.PatchAsync($"/api/tasks/{llm2}/cancel", null);

        // Compared as sets: the order is checked by created_at, which ties for tasks created in
        // the same millisecond (see TaskStoreTests.Lease_OfTasksSubmittedInTheSameMillisecond_IsOldestFirst).
        async Task<string[]> Listed(string query)
        {
            var items = await ListAsync(query);
            AssertNewestFirst(items);
            return items.Select(t => t.GetProperty("id").GetString()!).Order(StringComparer.Ordinal).ToArray();
        }
        string[] Set(params string[] ids) => ids.Order(StringComparer.Ordinal).ToArray();

        Assert.Equal(Set(tts1, llm2, sd1, llm1), await Listed(""));
        Assert.Equal(Set(llm2, llm1), await Listed("type=llm"));
        Assert.Equal(Set(tts1, sd1), await Listed("type=sd,tts"));
        Assert.Equal(Set(llm2), await Listed("status=canceled"));
        Assert.Equal(Set(tts1, sd1, llm1), await Listed("status=queued"));
        Assert.Equal(Set(llm1), await Listed("status=queued&type=llm"));
        Assert.Equal(Set(tts1, llm2, sd1, llm1), await Listed("status=queued,canceled"));
        Assert.Empty(await Listed("status=succeeded,failed"));
    }

    [Fact]
    public async Task List_WithLimitAndCursor_PagesThroughEveryTaskOnce_NewestFirst()
    {
        var submitted = new List<string>();
        for (var i = 0; i < 7; i++)
        {
            submitted.Add(await SubmitAsync());
        }

        var listed = new List<JsonElement>();
        var pages = 0;
        string? cursor = null;
        do
        {
            var response = await Client.GetAsync($"/api/tasks?limit=3{(cursor is null ? "" : $"&cursor={cursor}")}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var page = await response.JsonAsync();
            var items = page.GetProperty("items").EnumerateArray().ToArray();
            Assert.InRange(items.Length, 1, 3);
            listed.AddRange(items);
            cursor = page.GetProperty("next_cursor").GetString();
            Assert.True(++pages <= 3, "The cursor never ended.");
        }
        while (cursor is not null);

        Assert.Equal(3, pages);
        var ids = listed.Select(t => t.GetProperty("id").GetString()!).ToArray();
        Assert.Equal(ids.Length, ids.Distinct().Count());
        Assert.Equal(submitted.Order(StringComparer.Ordinal), ids.Order(StringComparer.Ordinal));
        AssertNewestFirst(listed);
    }

    [Fact]
    public async Task List_ByModel_PagesThroughThatModelsTasksOnly_NewestFirst()
    {
        var sdxl = new List<string>();
        for (var i = 0; i < 25; i++)
        {
            // Among 25 tasks, the 5 of the model sit apart: a page of 2 comes from runs of others.
            var model = i % 5 == 4 ? "sdxl" : "flux";
            var created = await Client.PostJsonAsync("/api/tasks", $$$"""{"type":"sd","model":"{{{model}}}","input":{"prompt":"p{{{i}}}"}}""");
            var id = (await created.JsonAsync()).GetProperty("id").GetString()!;
            if (model == "sdxl")
            {
                sdxl.Add(id);
            }
        }

        var listed = new List<JsonElement>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await (await Client.GetAsync($"/api/tasks?model=sdxl&limit=2{(cursor is null ? "" : $"&cursor={cursor}")}")).JsonAsync();
            listed.AddRange(page.GetProperty("items").EnumerateArray());
            cursor = page.GetProperty("next_cursor").GetString();
            Assert.True(++pages <= 10, "The cursor never ended.");
        }
        while (cursor is not null);

        Assert.All(listed, t => Assert.Equal("sdxl", t.GetProperty("model").GetString()));
        Assert.Equal(sdxl.Order(StringComparer.Ordinal), listed.Select(t => t.GetProperty("id").GetString()!).Order(StringComparer.Ordinal));
        Assert.Equal(listed.Count, listed.Select(t => t.GetProperty("id").GetString()).Distinct().Count());
        AssertNewestFirst(listed);
        var none = await (await Client.GetAsync("/api/tasks?model=nobody-has-it")).JsonAsync();
        Assert.Equal(0, none.GetProperty("items").GetArrayLength());
    }

    [Theory]
    [InlineData("status=done", "status")]
    [InlineData("status=queued,bogus", "status")]
    [InlineData("type=video", "type")]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=101", "limit")]
    [InlineData("limit=ten", "limit")]
    [InlineData("cursor=not-a-cursor", "cursor")]
    [InlineData("model=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "model")]
    public async Task List_WithABadQuery_Answers400_NamingTheParameter(string query, string parameter)
    {
        var problem = await AssertProblemAsync(await Client.GetAsync($"/api/tasks?{query}"), HttpStatusCode.BadRequest);

        Assert.Equal([parameter], problem.GetProperty("errors").EnumerateObject().Select(e => e.Name));
    }

    // ---- worker endpoints ----

    [Theory]
    [InlineData("""{"task_types":["llm"]}""", "name")]
    [InlineData("""{"name":"w","task_types":[]}""", "task_types")]
    [InlineData("""{"name":"w","task_types":["video"]}""", "task_types")]
    [InlineData("""{"name":"w","task_types":["llm"],"capacity":0}""", "capacity")]
    [InlineData("""{"name":"w","task_types":["llm"],"models":[""]}""", "models")]
    public async Task Register_WithBadFields_Answers400_NamingThem(string body, string field)
    {
        var problem = await AssertProblemAsync(await Client.PostJsonAsync("/api/workers/register", body), HttpStatusCode.BadRequest);

        Assert.Contains(field, problem.GetProperty("errors").EnumerateObject().Select(e => e.Name));
    }

    [Fact]
    public async Task Register_AnswersTheWorkerIdAndItsSettings()
    {
        var response = await Client.PostJsonAsync("/api/workers/register",
            """{"name":"gpu-1","task_types":["llm","sd"],"backends":{"llm":"sim"},"models":["tiny"],"gpus":[{"name":"H100","memory_total_mb":81559,"memory_free_mb":80000}],"capacity":2,"version":"0.1.0"}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.JsonAsync();
        Assert.Matches("^w_[0-9a-f]{32}$", body.GetProperty("worker_id").GetString());
        Assert.True(body.GetProperty("heartbeat_interval_seconds").GetInt32() > 0);
        Assert.True(body.GetProperty("lease_ttl_seconds").GetInt32() > body.GetProperty("heartbeat_interval_seconds").GetInt32());
        Assert.True(body.GetProperty("max_wait_seconds").GetInt32() > 0);
    }

    [Theory]
    [InlineData("w_0190c0a0b0c0d0e0f000000000000000")]
    [InlineData("not-a-worker")]
    public async Task Lease_AndHeartbeat_ForAnUnknownWorker_Answer404(string workerId)
    {
        await SubmitAsync();

        await AssertProblemAsync(await Client.PostAsync($"/api/workers/{workerId}/lease?wait_seconds=0", null), HttpStatusCode.NotFound);
        await AssertProblemAsync(await Client.PostObjectAsync($"/api/workers/{workerId}/heartbeat", new { running = Array.Empty<object>() }), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Lease_HandsTheWorkerTheTask_WithItsInputAndAttempt()
    {
        var worker = await RegisterAsync(["sd"]);
        var id = await SubmitAsync("""{"type":"sd","timeout_seconds":60,"input":{"prompt":"a cat"},"metadata":{"k":"v"}}""");

        var response = await Client.PostObjectAsync($"/api/workers/{worker}/lease?wait_seconds=0", new { max_tasks = 2 });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var task = Assert.Single((await response.JsonAsync()).GetProperty("tasks").EnumerateArray());
        Assert.Equal(id, task.GetProperty("task_id").GetString());
        Assert.Equal("sd", task.GetProperty("type").GetString());
        Assert.Equal(1, task.GetProperty("attempt").GetInt32());
        Assert.Equal(60, task.GetProperty("timeout_seconds").GetInt32());
        Assert.Equal("a cat", task.GetProperty("input").GetProperty("prompt").GetString());
        AssertJson("""{"k":"v"}""", task.GetProperty("metadata"));
        Assert.EndsWith("Z", task.GetProperty("deadline_at").GetString(), StringComparison.Ordinal);
        var running = await GetTaskAsync(id);
        Assert.Equal("running", running.GetProperty("status").GetString());
        Assert.Equal(worker, running.GetProperty("worker_id").GetString());
        Assert.EndsWith("Z", running.GetProperty("started_at").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Complete_WithTheLeaseToken_Succeeds_AndTheClientSeesTheOutput()
    {
        var worker = await RegisterAsync(["llm"]);
        var id = await SubmitAsync();
        var leased = await LeaseAsync(worker);

        var response = await Client.PostObjectAsync($"/api/workers/{worker}/tasks/{id}/complete",
            new { lease_token = leased.Token, output = new { text = "hi there" } });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("succeeded", (await response.JsonAsync()).GetProperty("status").GetString());
        var task = await GetTaskAsync(id);
        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        AssertJson("""{"text":"hi there"}""", task.GetProperty("output"));
        Assert.EndsWith("Z", task.GetProperty("completed_at").GetString(), StringComparison.Ordinal);
        Assert.True(task.GetProperty("metrics").GetProperty("run_ms").GetInt64() >= 0);
        Assert.True(task.GetProperty("metrics").GetProperty("wait_ms").GetInt64() >= 0);
    }

    [Fact]
    public async Task Complete_WithAWrongToken_Answers409_AndLeavesTheTaskUnchanged()
    {
        var worker = await RegisterAsync(["llm"]);
        var id = await SubmitAsync();
        var leased = await LeaseAsync(worker);
        var before = (await GetTaskAsync(id)).GetRawText();

        var response = await Client.PostObjectAsync($"/api/workers/{worker}/tasks/{id}/complete",
            new { lease_token = leased.Token + "-stale", output = new { text = "forged" } });

        await AssertProblemAsync(response, HttpStatusCode.Conflict);
        Assert.Equal(before, (await GetTaskAsync(id)).GetRawText());
    }

    [Fact]
    public async Task Complete_WithInvalidUtf8InTheOutput_Answers400_AndLeavesTheTaskRunning()
    {
        var worker = await RegisterAsync(["llm"]);
        var id = await SubmitAsync();
        var leased = await LeaseAsync(worker);
        var bytes = Encoding.UTF8.GetBytes($$$"""{"lease_token":"{{{leased.Token}}}","output":{"text":"X"}}""");
        bytes[Array.IndexOf(bytes, (byte)'X')] = 0xFF;
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        var response = await Client.PostAsync($"/api/workers/{worker}/tasks/{id}/complete", content);

        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal("running", (await GetTaskAsync(id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Heartbeat_WithANullRunningEntry_Answers400()
    {
        var worker = await RegisterAsync(["llm"]);

        var response = await Client.PostJsonAsync($"/api/workers/{worker}/heartbeat", """{"running":[null]}""");

        var problem = await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal(["running"], problem.GetProperty("errors").EnumerateObject().Select(e => e.Name));
    }

    [Fact]
    public async Task Fail_Retryable_SchedulesARetry_AndRecordsTheAttempt()
    {
        var worker = await RegisterAsync(["llm"]);
        var id = await SubmitAsync();
        var first = await LeaseAsync(worker);

        var response = await Client.PostObjectAsync($"/api/workers/{worker}/tasks/{id}/fail",
            new { lease_token = first.Token, error = new { code = "executor_died", message = "boom" }, retryable = true });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("scheduled", (await response.JsonAsync()).GetProperty("status").GetString());
        var task = await GetTaskAsync(id);
        Assert.Equal("scheduled", task.GetProperty("status").GetString());
        Assert.Equal(1, task.GetProperty("attempt").GetInt32());
        Assert.Equal("executor_died", task.GetProperty("error").GetProperty("code").GetString());
        Assert.True(task.GetProperty("retry_at").GetDateTimeOffset() > task.GetProperty("created_at").GetDateTimeOffset());
        var attempt = Assert.Single(task.GetProperty("attempts").EnumerateArray());
        Assert.Equal(1, attempt.GetProperty("attempt").GetInt32());
        Assert.Equal(worker, attempt.GetProperty("worker_id").GetString());
        Assert.Equal("failed", attempt.GetProperty("outcome").GetString());
        Assert.Equal("executor_died", attempt.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Fail_HandedBackOnShutdown_QueuesTheTaskAgainAtOnce()
    {
        var worker = await RegisterAsync(["llm"]);
        var id = await SubmitAsync();
        var first = await LeaseAsync(worker);

        var response = await Client.PostObjectAsync($"/api/workers/{worker}/tasks/{id}/fail",
            new { lease_token = first.Token, error = new { code = "worker_shutdown", message = "SIGTERM" }, retryable = true });

        Assert.Equal("queued", (await response.JsonAsync()).GetProperty("status").GetString());
        var second = await LeaseAsync(worker);
        Assert.Equal(id, second.Id);
        Assert.Equal(2, second.Attempt);
    }

    [Fact]
    public async Task Fail_NotRetryable_FailsTheTask_WithTheWorkersError()
    {
        var worker = await RegisterAsync(["llm"]);
        var id = await SubmitAsync();
        var leased = await LeaseAsync(worker);

        var response = await Client.PostObjectAsync($"/api/workers/{worker}/tasks/{id}/fail",
            new { lease_token = leased.Token, error = new { code = "invalid_input", message = "bad prompt" }, retryable = false });

        Assert.Equal("failed", (await response.JsonAsync()).GetProperty("status").GetString());
        var task = await GetTaskAsync(id);
        Assert.Equal("failed", task.GetProperty("status").GetString());
        AssertJson("""{"code":"invalid_input","message":"bad prompt"}""", task.GetProperty("error"));
    }

    [Fact]
    public async Task Progress_ShowsInTheTask()
    {
        var worker = await RegisterAsync(["sd"]);
        var id = await SubmitAsync("""{"type":"sd","input":{"prompt":"a cat"}}""");
        var leased = await LeaseAsync(worker);

        var response = await Client.PostObjectAsync($"/api/workers/{worker}/tasks/{id}/progress",
            new { lease_token = leased.Token, progress = 0.5, message = "step 15/30" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False((await response.JsonAsync()).GetProperty("cancel").GetBoolean());
        var task = await GetTaskAsync(id);
        Assert.Equal(0.5, task.GetProperty("progress").GetDouble());
        Assert.Equal("step 15/30", task.GetProperty("progress_message").GetString());
    }

    [Fact]
    public async Task Progress_OfACancelingTask_TellsTheWorkerToStop()
    {
        var worker = await RegisterAsync(["llm"]);
        var id = await SubmitAsync();
        var leased = await LeaseAsync(worker);
        await Client.PatchAsync($"/api/tasks/{id}/cancel", null);

        var response = await Client.PostObjectAsync($"/api/workers/{worker}/tasks/{id}/progress", new { lease_token = leased.Token, progress = 0.1 });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await response.JsonAsync()).GetProperty("cancel").GetBoolean());
    }

    // ---- health and documents ----

    [Fact]
    public async Task Health_Answers200_WithRedisUp()
    {
        var response = await Client.GetAsync("/api/health");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var health = await response.JsonAsync();
        Assert.Equal("healthy", health.GetProperty("status").GetString());
        Assert.Equal("up", health.GetProperty("redis").GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("/openapi/v1.json", "application/json")]
    [InlineData("/scalar", "text/html")]
    public async Task ApiDocuments_Answer200(string path, string mediaType)
    {
        var response = await Client.GetAsync(path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(mediaType, response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task OpenApiDocument_DescribesTheTaskAndWorkerEndpoints()
    {
        var document = await (await Client.GetAsync("/openapi/v1.json")).JsonAsync();

        var paths = document.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Contains("/api/tasks", paths);
        Assert.Contains("/api/tasks/{id}", paths);
        Assert.Contains("/api/workers/{workerId}/lease", paths);
    }

    // ---- no malformed request is a server error ----

    [Fact]
    public async Task MalformedRequests_AcrossAllEndpoints_Answer4xx_NeverA5xx()
    {
        var worker = await RegisterAsync(["llm"]);
        var task = await SubmitAsync();
        var unknown = "0190c0a0b0c0d0e0f000000000000000";
        var deep = """{"type":"llm","input":{"prompt":"x","stop":""" + new string('[', 100) + new string(']', 100) + "}}";
        const string json = "application/json";

        static byte[] Utf8WithFF(string json) =>
            Encoding.UTF8.GetBytes(json).Select(b => b == (byte)'X' ? (byte)0xFF : b).ToArray();

        BadRequest[] requests =
        [
            new("POST", "/api/tasks", json, ""),
            new("POST", "/api/tasks", null, null),
            new("POST", "/api/tasks", json, "null"),
            new("POST", "/api/tasks", json, "42"),
            new("POST", "/api/tasks", json, "\"task\""),
            new("POST", "/api/tasks", json, """{"type":null,"input":null}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"messages":[null]}}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"messages":[{"role":5,"content":[]}]}}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"x","stop":[null]}}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"x","temperature":1e400}}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"x","max_tokens":1e30}}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"x"},"priority":99999999999999999999999}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"\udc00\ud800"}}"""),
            new("POST", "/api/tasks", json, """{"type":"tts","input":{"text":"x","voice":"\ud800"}}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"x"},"model":"\ud800"}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"x"},"model":"a\u0000b"}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"x"},"webhook":"\ud800"}"""),
            new("POST", "/api/tasks", json, deep),
            new("POST", "/api/tasks", json, """{"type":"sd","input":{"prompt":"x","seed":-1}}"""),
            new("POST", "/api/tasks", json, """{"type":"tts","input":{"text":"x","speed":"fast"}}"""),
            new("POST", "/api/tasks", json, """{"type":"image_to_text","input":{"image":123}}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"x"},"webhook":"javascript:alert(1)"}"""),
            new("POST", "/api/tasks", "text/plain", "hello"),
            new("POST", "/api/tasks", "application/json; charset=utf-16", "{}"),
            new("PUT", "/api/tasks", json, "{}"),
            new("GET", "/api/tasks/%00", null, null),
            new("GET", "/api/tasks/..%2F..%2Fetc%2Fpasswd", null, null),
            new("GET", "/api/tasks?limit=-1", null, null),
            new("GET", "/api/tasks?limit=99999999999999999999", null, null),
            new("GET", "/api/tasks?cursor=" + unknown.ToUpperInvariant(), null, null),
            new("GET", "/api/tasks?type=llm,,video", null, null),
            new("GET", "/api/tasks?status=%00", null, null),
            new("PATCH", "/api/tasks/%20/cancel", null, null),
            new("DELETE", $"/api/tasks/{unknown}", null, null),
            new("DELETE", $"/api/tasks/{task}", null, null),
            new("POST", "/api/workers/register", json, ""),
            new("POST", "/api/workers/register", json, "[]"),
            new("POST", "/api/workers/register", json, """{"name":"x","task_types":"llm"}"""),
            new("POST", "/api/workers/register", json, """{"name":"x","task_types":[null]}"""),
            new("POST", "/api/workers/register", json, """{"name":"x","task_types":["llm"],"capacity":"two"}"""),
            new("POST", "/api/workers/register", json, """{"name":"x","task_types":["llm"],"capacity":99999999999}"""),
            new("POST", "/api/workers/register", json, """{"name":"x","task_types":["llm"],"models":[null]}"""),
            new("POST", "/api/workers/register", json, """{"name":"\ud800","task_types":["llm"],"capacity":1,"foo":"""),
            new("POST", "/api/workers/register", "text/plain", "name=x"),
            new("POST", $"/api/workers/{worker}/heartbeat", json, """{"running":[null]}"""),
            new("POST", $"/api/workers/{worker}/heartbeat", json, """{"running":[{"task_id":"x","lease_token":"y"}]}"""),
            new("POST", $"/api/workers/{worker}/heartbeat", json, """{"running":"all"}"""),
            new("POST", $"/api/workers/{worker}/heartbeat", json, ""),
            new("POST", $"/api/workers/{worker}/lease?wait_seconds=abc", null, null),
            new("POST", $"/api/workers/{worker}/lease?wait_seconds=61", null, null),
            new("POST", $"/api/workers/{worker}/lease?wait_seconds=-1", null, null),
            new("POST", $"/api/workers/{worker}/lease?wait_seconds=0", json, """{"max_tasks":0}"""),
            new("POST", $"/api/workers/{worker}/lease?wait_seconds=0", json, """{"max_tasks":"x"}"""),
            new("POST", $"/api/workers/{worker}/lease?wait_seconds=0", json, "[1]"),
            new("POST", $"/api/workers/{worker}/tasks/{task}/progress", json, "{}"),
            new("POST", $"/api/workers/{worker}/tasks/{task}/progress", json, """{"lease_token":"t","progress":2}"""),
            new("POST", $"/api/workers/{worker}/tasks/{task}/progress", json, """{"lease_token":"t","progress":0.5}"""),
            new("POST", $"/api/workers/{worker}/tasks/{unknown}/progress", json, """{"lease_token":"t"}"""),
            new("POST", $"/api/workers/{worker}/tasks/{task}/complete", json, """{"lease_token":"t"}"""),
            new("POST", $"/api/workers/{worker}/tasks/{task}/complete", json, """{"lease_token":"t","output":[1]}"""),
            new("POST", $"/api/workers/{worker}/tasks/{unknown}/complete", json, """{"lease_token":"t","output":{}}"""),
            new("POST", $"/api/workers/{worker}/tasks/{task}/fail", json, """{"lease_token":"t"}"""),
            new("POST", $"/api/workers/{worker}/tasks/{task}/fail", json, """{"lease_token":"t","error":{"code":""}}"""),
            new("POST", $"/api/workers/{worker}/tasks/{task}/fail", json, """{"lease_token":"t","error":{"code":"x"},"retryable":"yes"}"""),
            new("POST", $"/api/workers/{worker}/tasks/{task}/fail", json, """{"lease_token":"t","error":{"code":"x"},"retryable":true}"""),
            new("POST", "/api/tasks", json, """{"type":"llm","input":{"prompt":"x"},"\ud800":1}"""),
            new("POST", "/api/tasks", json, Bytes: Utf8WithFF("""{"type":"llm","input":{"prompt":"X"}}""")),
            new("POST", "/api/tasks", json, Bytes: Utf8WithFF("""{"type":"llm","input":{"prompt":"x"},"X":1}""")),
            new("POST", "/api/tasks", json, Bytes: Utf8WithFF("""{"type":"llm","input":{"messages":[{"role":"user","content":"X"}]}}""")),
            new("POST", "/api/tasks", json, Bytes: Utf8WithFF("""{"type":"image_to_text","input":{"image":"X"}}""")),
            new("POST", "/api/workers/register", json, Bytes: Utf8WithFF("""{"name":"X","task_types":["llm"]}""")),
            new("POST", $"/api/workers/{worker}/tasks/{task}/complete", json, Bytes: Utf8WithFF("""{"lease_token":"t","output":{"X":1}}""")),
        ];

        var wrong = new List<string>();
        foreach (var (method, path, contentType, body, bytes) in requests)
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path);
            if (body is not null || bytes is not null)
            {
                request.Content = bytes is null ? new StringContent(body!, Encoding.UTF8) : new ByteArrayContent(bytes);
                request.Content.Headers.ContentType = contentType is null ? null : MediaTypeHeaderValue.Parse(contentType);
            }
            using var response = await Client.SendAsync(request);
            var status = (int)response.StatusCode;
            if (status is < 400 or >= 500)
            {
                wrong.Add($"{status} for {method} {path} {body ?? (bytes is null ? "" : Encoding.UTF8.GetString(bytes))}: {await response.Content.ReadAsStringAsync()}");
            }
        }

        Assert.True(wrong.Count == 0, $"{wrong.Count} of {requests.Length} malformed requests did not answer 4xx:\n" + string.Join("\n", wrong));
        Assert.Equal("queued", (await GetTaskAsync(task)).GetProperty("status").GetString());
    }

    // ---- helpers ----

    private async Task<string> SubmitAsync(string body = """{"type":"llm","input":{"prompt":"hello"}}""")
    {
        var response = await Client.PostJsonAsync("/api/tasks", body);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.JsonAsync()).GetProperty("id").GetString()!;
    }

    private async Task<JsonElement> GetTaskAsync(string id)
    {
        var response = await Client.GetAsync($"/api/tasks/{id}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.JsonAsync();
    }

    private async Task<JsonElement[]> ListAsync(string query)
    {
        var response = await Client.GetAsync($"/api/tasks?{query}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.JsonAsync()).GetProperty("items").EnumerateArray().ToArray();
    }

    private async Task<string[]> ListIdsAsync(string query) =>
        (await ListAsync(query)).Select(t => t.GetProperty("id").GetString()!).ToArray();

    private static void AssertNewestFirst(IReadOnlyList<JsonElement> tasks)
    {
        var created = tasks.Select(t => DateTimeOffset.Parse(t.GetProperty("created_at").GetString()!, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        for (var i = 1; i < created.Length; i++)
        {
            Assert.True(created[i] <= created[i - 1], $"Item {i} was created at {created[i]:O}, after item {i - 1} ({created[i - 1]:O}).");
        }
    }

    private Task<string> RegisterAsync(string[] types) => HotPathTests.RegisterWorkerAsync(Client, types);

    private async Task<(string Id, string Token, int Attempt)> LeaseAsync(string worker)
    {
        var response = await Client.PostAsync($"/api/workers/{worker}/lease?wait_seconds=0", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var task = Assert.Single((await response.JsonAsync()).GetProperty("tasks").EnumerateArray());
        return (task.GetProperty("task_id").GetString()!, task.GetProperty("lease_token").GetString()!, task.GetProperty("attempt").GetInt32());
    }

    private static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"Expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.JsonAsync();
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("title").GetString()));
        return problem;
    }

    private sealed record BadRequest(string Method, string Path, string? ContentType = null, string? Body = null, byte[]? Bytes = null);

    private static void AssertJson(string expected, JsonElement actual) =>
        Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(expected).RootElement, actual), $"Expected {expected}\n but got {actual.GetRawText()}");
}
