using System.Diagnostics;
using System.Net;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// The hot path's promises, checked on real processes: submit, lease and complete are one Redis
/// round trip each, and a waiting lease is woken by a submission on any replica.
/// </summary>
[Trait("Category", "Api")]
[Collection(TimingCollection.Name)]
public sealed class HotPathTests(RedisServer redis) : IClassFixture<RedisServer>, IAsyncLifetime
{
    private ApiProcess api = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        api = await ApiProcess.StartAsync(redis);
    }

    public async Task DisposeAsync() => await api.DisposeAsync();

    [Fact]
    public async Task SubmitLeaseAndComplete_EachMakeOneRedisRoundTrip()
    {
        var workerId = await RegisterWorkerAsync(api.Client, ["llm"]);
        // A first call loads the script library if Redis lacks it; later calls are the steady state.
        await RunOneTaskAsync(api.Client, workerId);
        await using var monitor = await RedisMonitor.StartAsync(redis);

        HttpResponseMessage submitted = null!;
        var submitCommands = await monitor.ClientCommandsDuringAsync(redis.Db, async () =>
            submitted = await api.Client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"hello"}}"""));
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);

        JsonElement lease = default;
        var leaseCommands = await monitor.ClientCommandsDuringAsync(redis.Db, async () =>
            lease = await (await api.Client.PostAsync($"/api/workers/{workerId}/lease?wait_seconds=0", null)).JsonAsync());
        var task = lease.GetProperty("tasks")[0];

        HttpResponseMessage completed = null!;
        var completeCommands = await monitor.ClientCommandsDuringAsync(redis.Db, async () =>
            completed = await api.Client.PostObjectAsync(
                $"/api/workers/{workerId}/tasks/{task.GetProperty("task_id").GetString()}/complete",
                new { lease_token = task.GetProperty("lease_token").GetString(), output = new { text = "hi" } }));
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);

        Assert.True(submitCommands.Count == 1, "submit: " + string.Join("\n", submitCommands));
        Assert.True(leaseCommands.Count == 1, "lease: " + string.Join("\n", leaseCommands));
        Assert.True(completeCommands.Count == 1, "complete: " + string.Join("\n", completeCommands));
        Assert.All(submitCommands.Concat(leaseCommands).Concat(completeCommands), c => Assert.Contains("\"fcall\"", c, StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task ABatchOfAThousandTasks_IsOneRedisRoundTrip()
    {
        var batch = new { tasks = Enumerable.Range(0, 1000).Select(i => new { type = "sd", input = new { prompt = $"image {i}" } }) };
        // A first call loads the script library if Redis lacks it; the steady state is one FCALL.
        Assert.Equal(HttpStatusCode.OK, (await api.Client.PostObjectAsync("/api/tasks/batch", batch)).StatusCode);
        await using var monitor = await RedisMonitor.StartAsync(redis);

        JsonElement answer = default;
        var commands = await monitor.ClientCommandsDuringAsync(redis.Db, async () =>
            answer = await (await api.Client.PostObjectAsync("/api/tasks/batch", batch)).JsonAsync());

        Assert.Equal(1000, answer.GetProperty("accepted").GetInt32());
        Assert.True(commands.Count == 1, "batch: " + string.Join("\n", commands.Select(c => c[..Math.Min(c.Length, 200)])));
        Assert.Contains("\"fcall\"", commands[0], StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task WaitingLease_IsWokenBySubmissionOnAnotherReplica_WellUnderASecond()
    {
        await using var other = await ApiProcess.StartAsync(redis);

        var (response, wokenAfter, submitted) = await LeaseWokenBySubmissionAsync(other, "/api/tasks", """{"type":"tts","input":{"text":"wake up"}}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var leased = (await response.JsonAsync()).GetProperty("tasks")[0];
        Assert.Equal(submitted.GetProperty("id").GetString(), leased.GetProperty("task_id").GetString());
        Assert.True(wokenAfter < TimeSpan.FromSeconds(1), $"The lease returned {wokenAfter.TotalMilliseconds:0} ms after the submission.");
    }

    [Theory]
    [InlineData("/api/tasks", """{"type":"tts","input":{"text":"wake up"}}""")]
    [InlineData("/api/tasks/batch", """{"tasks":[{"type":"tts","input":{"text":"wake up"}}]}""")]
    public async Task WaitingLease_IsWokenBySubmissionOnItsOwnReplica(string path, string body)
    {
        // The notification goes through Redis and back to the replica that published it.
        var (response, wokenAfter, _) = await LeaseWokenBySubmissionAsync(api, path, body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(wokenAfter < TimeSpan.FromSeconds(1), $"The lease returned {wokenAfter.TotalMilliseconds:0} ms after the submission.");
    }

    /// <summary>
    /// Parks a tts worker's lease on <see cref="api"/>, submits <paramref name="body"/> to
    /// <paramref name="path"/> through <paramref name="submitter"/>, and returns the lease's answer,
    /// how long after the submission it came, and the submission's answer.
    /// </summary>
    private async Task<(HttpResponseMessage Lease, TimeSpan WokenAfter, JsonElement Submitted)> LeaseWokenBySubmissionAsync(
        ApiProcess submitter, string path, string body)
    {
        var workerId = await RegisterWorkerAsync(api.Client, ["tts"]);
        await using var monitor = await RedisMonitor.StartAsync(redis);

        var clock = Stopwatch.StartNew();
        var lease = api.Client.PostAsync($"/api/workers/{workerId}/lease?wait_seconds=30", null);
        // The lease script ran and found nothing: the lease is now waiting for a notification.
        await monitor.WaitForLineAsync(line => line.Contains(workerId) && !line.Contains(" lua]"), TimeSpan.FromSeconds(10));

        var submittedAt = clock.Elapsed;
        var submission = await submitter.Client.PostJsonAsync(path, body);
        Assert.True(submission.IsSuccessStatusCode);
        var submitted = await submission.JsonAsync();
        var response = await lease.WaitAsync(TimeSpan.FromSeconds(35));
        return (response, clock.Elapsed - submittedAt, submitted);
    }

    [Fact]
    public async Task WaitingLease_IsHandedTheTaskInTheSubmissionsOwnRoundTrip()
    {
        await using var local = await ApiProcess.StartAsync(redis, environment: WaitingLogged);
        var workerId = await RegisterWorkerAsync(local.Client, ["tts", "llm"]);
        await RunOneTaskAsync(local.Client, workerId); // the script library is loaded
        await using var monitor = await RedisMonitor.StartAsync(redis);
        var lease = local.Client.PostAsync($"/api/workers/{workerId}/lease?wait_seconds=30", null);
        await WaitingAsync(local, workerId);

        JsonElement submitted = default;
        HttpResponseMessage leaseResponse = null!;
        var commands = await monitor.CommandsDuringAsync(redis.Db, async () =>
        {
            submitted = await (await local.Client.PostJsonAsync("/api/tasks", """{"type":"tts","input":{"text":"hand it over"}}""")).JsonAsync();
            leaseResponse = await lease.WaitAsync(TimeSpan.FromSeconds(10));
        });

        // The submission leased the task to the waiting worker: the lease's answer came from the
        // submission's script call, with no publish and no lease call of its own.
        Assert.Equal(HttpStatusCode.OK, leaseResponse.StatusCode);
        var leased = (await leaseResponse.JsonAsync()).GetProperty("tasks")[0];
        Assert.Equal(submitted.GetProperty("id").GetString(), leased.GetProperty("task_id").GetString());
        var client = commands.Where(c => !c.Contains(" lua]", StringComparison.Ordinal)).ToArray();
        Assert.True(client.Length == 1, "client commands: " + string.Join("\n", client));
        Assert.Contains("_submit\"", client[0], StringComparison.Ordinal);
        Assert.DoesNotContain(commands, c => c.Contains("\"publish\"", StringComparison.OrdinalIgnoreCase) && c.Contains("notify", StringComparison.Ordinal));
        var stored = await (await local.Client.GetAsync($"/api/tasks/{leased.GetProperty("task_id").GetString()}")).JsonAsync();
        Assert.Equal("running", stored.GetProperty("status").GetString());
        Assert.Equal(workerId, stored.GetProperty("worker_id").GetString());
    }

    [Fact]
    public async Task WaitingLease_ThatCannotTakeTheTask_LeavesItQueuedForAWorkerThatCan()
    {
        await using var local = await ApiProcess.StartAsync(redis, environment: WaitingLogged);
        var small = await RegisterWorkerAsync(local.Client, ["tts"]); // no GPU
        var lease = local.Client.PostAsync($"/api/workers/{small}/lease?wait_seconds=2", null);
        await WaitingAsync(local, small);

        await using var monitor = await RedisMonitor.StartAsync(redis);
        JsonElement submitted = default;
        var commands = await monitor.CommandsDuringAsync(redis.Db, async () => submitted = await (await local.Client.PostJsonAsync("/api/tasks",
            """{"type":"tts","input":{"text":"too big"},"requirements":{"gpu_memory_mb":1000}}""")).JsonAsync());
        var id = submitted.GetProperty("id").GetString();

        // Not taken, it is published, so that a lease waiting on any replica hears of it.
        Assert.Contains(commands, c => c.Contains("\"publish\"", StringComparison.OrdinalIgnoreCase) && c.Contains("notify", StringComparison.Ordinal));
        Assert.Equal("queued", submitted.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.NoContent, (await lease.WaitAsync(TimeSpan.FromSeconds(10))).StatusCode);
        Assert.Equal("queued", (await (await local.Client.GetAsync($"/api/tasks/{id}")).JsonAsync()).GetProperty("status").GetString());
        var big = await local.Client.PostObjectAsync("/api/workers/register", new
        {
            name = "big",
            task_types = new[] { "tts" },
            capacity = 1,
            gpus = new[] { new { name = "NVIDIA L4", memory_total_mb = 24576, memory_free_mb = 24000 } },
        });
        var bigId = (await big.JsonAsync()).GetProperty("worker_id").GetString();
        var taken = await (await local.Client.PostAsync($"/api/workers/{bigId}/lease?wait_seconds=0", null)).JsonAsync();
        Assert.Equal(id, taken.GetProperty("tasks")[0].GetProperty("task_id").GetString());
    }

    /// <summary>The API logs when a lease starts waiting (Debug), so that a test can submit after.</summary>
    private static readonly Dictionary<string, string> WaitingLogged = new()
    {
        ["Logging__LogLevel__TaskManager.Api.Coordination.LeaseWaiters"] = "Debug",
    };

    private static Task WaitingAsync(ApiProcess api, string workerId) =>
        Wait.UntilAsync(() => api.Output.Contains($"The lease of {workerId} is waiting for work", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), $"the lease of {workerId} waiting");

    [Fact]
    public async Task Lease_WithNothingQueued_AnswersNoContentAfterItsWait()
    {
        var workerId = await RegisterWorkerAsync(api.Client, ["sd"]);
        await api.Client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"not for an sd worker"}}""");

        var clock = Stopwatch.StartNew();
        var response = await api.Client.PostAsync($"/api/workers/{workerId}/lease?wait_seconds=1", null);

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"It answered after {clock.Elapsed.TotalMilliseconds:0} ms.");
    }

    internal static async Task<string> RegisterWorkerAsync(HttpClient client, string[] types, int capacity = 1)
    {
        var response = await client.PostObjectAsync("/api/workers/register", new { name = "test-worker", task_types = types, capacity });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.JsonAsync()).GetProperty("worker_id").GetString()!;
    }

    private static async Task RunOneTaskAsync(HttpClient client, string workerId)
    {
        await client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"warm up"}}""");
        var task = (await (await client.PostAsync($"/api/workers/{workerId}/lease?wait_seconds=5", null)).JsonAsync()).GetProperty("tasks")[0];
        var done = await client.PostObjectAsync($"/api/workers/{workerId}/tasks/{task.GetProperty("task_id").GetString()}/complete",
            new { lease_token = task.GetProperty("lease_token").GetString(), output = new { } });
        Assert.Equal(HttpStatusCode.OK, done.StatusCode);
    }
}
