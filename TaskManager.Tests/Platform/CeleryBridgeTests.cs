using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Platform;

/// <summary>
/// TaskManager in front of an existing Celery deployment: a Python worker with the <c>celery</c>
/// backend (the Celery bridge) sends each task to a real Celery worker, which runs the STAND-IN for
/// the platform's GPU workers (<c>worker/tests/celery_standin/app/tasks.py</c>: a simulation, steered
/// by words in the prompt such as <c>@seconds=2</c>, <c>@hang</c>, <c>@fail=fatal</c>). Everything is
/// seen as a user sees it, through TaskManager's HTTP API, and the Celery side through its result
/// backend, its log and its pool processes. The tests share one fleet and run one after the other;
/// they assert on elapsed time (a cancel within its grace), so they run with the timing tests.
/// </summary>
[Trait("Category", "Platform")]
[Collection(TimingCollection.Name)]
public sealed partial class CeleryBridgeTests(CeleryBridgeFixture bridge) : IClassFixture<CeleryBridgeFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>A 1x1 PNG, as an image_to_text input.</summary>
    private const string Pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

    private FleetFixture Fleet => bridge.Fleet;

    [Fact]
    public async Task TheFourTypes_SucceedThroughCelery_EachOutputIsTheCeleryReturnValue_UnderTheTaskIdAsCeleryId()
    {
        var requests = new Dictionary<string, string>
        {
            ["llm"] = """{"type":"llm","model":"standin-llm","input":{"prompt":"Say hello @seconds=0.2"}}""",
            ["sd"] = """{"type":"sd","input":{"prompt":"two boats @seconds=0.2","num_images":2,"width":64,"height":64}}""",
            ["tts"] = """{"type":"tts","input":{"text":"Hello @seconds=0.2","voice":"en"}}""",
            ["image_to_text"] = $$$"""{"type":"image_to_text","input":{"image":"{{{Pixel}}}","prompt":"what is it @seconds=0.2"}}""",
        };
        var ids = new Dictionary<string, string>();
        foreach (var (type, json) in requests)
        {
            ids[type] = await Fleet.SubmitAsync(json);
        }

        foreach (var (type, id) in ids)
        {
            var task = await FinishedAsync(id);
            Assert.True(task.GetProperty("status").GetString() == "succeeded", $"{type}: {task}\n{bridge.Output}");
            var output = JsonNode.Parse(task.GetProperty("output").GetRawText())!.AsObject();
            var meta = await CeleryMetaAsync(id);
            Assert.Equal("SUCCESS", meta["status"]!.GetValue<string>());
            // The Celery task ran under the TaskManager task id, and got the plain id and its type as kwargs.
            Assert.Equal(id, meta["task_id"]!.GetValue<string>());
            var result = meta["result"]!.AsObject();
            Assert.Equal(id, result["celery_task_id"]!.GetValue<string>());
            Assert.Equal(id, result["task_id"]!.GetValue<string>());
            // The output is the return value, key by key; base64 under *_base64 became artifacts under the key without it.
            foreach (var (key, value) in result)
            {
                if (key.EndsWith("_base64", StringComparison.Ordinal))
                {
                    var stem = key[..^"_base64".Length];
                    var decoded = value is JsonArray list ? list.Select(v => Convert.FromBase64String(v!.GetValue<string>())).ToArray()
                        : [Convert.FromBase64String(value!.GetValue<string>())];
                    var artifacts = output[stem] is JsonArray many ? many.Select(a => a!.AsObject()).ToArray() : [output[stem]!.AsObject()];
                    Assert.Equal(decoded.Select(d => (long)d.Length), artifacts.Select(a => a["bytes"]!.GetValue<long>()));
                    Assert.All(artifacts, a => Assert.StartsWith($"/api/tasks/{id}/artifacts/{stem}", a["url"]!.GetValue<string>()));
                }
                else
                {
                    Assert.True(JsonNode.DeepEquals(value, output[key]), $"{type}: output.{key} is {output[key]?.ToJsonString()}, the result's {value?.ToJsonString()}");
                }
            }
        }
        Assert.Equal("standin-llm", (await Fleet.GetTaskAsync(ids["llm"])).GetProperty("output").GetProperty("model").GetString());
        Assert.Equal(2, (await Fleet.GetTaskAsync(ids["sd"])).GetProperty("output").GetProperty("images").GetArrayLength());
    }

    [Fact]
    public async Task ProgressStatesOfTheCeleryTask_ReachTheTasksEventStream()
    {
        var id = await Fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"Count slowly @seconds=1.5 @steps=3"}}""");
        await using var sse = await SseClient.ConnectAsync(Fleet.Client, $"/api/tasks/{id}/events");

        var events = await sse.ReadToEndAsync(Timeout);

        Assert.Equal("succeeded", events[^1].Data.GetProperty("status").GetString());
        var progress = events.Where(e => e.Event == "progress")
            .Select(e => (Value: e.Data.GetProperty("progress").GetDouble(), Message: e.Data.GetProperty("message").GetString()))
            .ToArray();
        Assert.Contains(progress, p => p.Message == "STAND-IN: step 1/3" && Math.Abs(p.Value - (1.0 / 3)) < 1e-9);
        Assert.Contains(progress, p => p.Message == "STAND-IN: step 2/3" && Math.Abs(p.Value - (2.0 / 3)) < 1e-9);
        Assert.Equal(progress.Select(p => p.Value).Order(), progress.Select(p => p.Value));
    }

    [Fact]
    public async Task CancelOfARunningCeleryTask_EndsCanceled_ItsPoolProcessIsGoneWithinTheGracePlusTwoSeconds_AndItIsNotRetried()
    {
        // It ignores SIGTERM: only a SIGKILL ends it.
        var id = await Fleet.SubmitAsync("""{"type":"tts","input":{"text":"Hang @hang"},"timeout_seconds":600,"max_attempts":3}""");
        var pid = await HangingPoolProcessAsync(id);

        var canceledAt = DateTimeOffset.UtcNow;
        var response = await Fleet.Client.PatchAsync($"/api/tasks/{id}/cancel", null);
        Assert.Equal("canceling", (await response.JsonAsync()).GetProperty("status").GetString());
        var task = await Fleet.WaitForStatusAsync(id, s => s != "canceling", Timeout);

        Assert.Equal("canceled", task.GetProperty("status").GetString());
        var limit = TimeSpan.FromSeconds(FleetFixture.CancelGraceSeconds + 2);
        await Wait.UntilAsync(() => !LinuxProcess.IsAlive(pid), limit - (DateTimeOffset.UtcNow - canceledAt),
            $"the Celery pool process {pid} to be killed within {limit.TotalSeconds:0} s of the cancel");
        await CeleryLogsAsync($"Terminating {id} (9)");
        // Never retried: one attempt, one Celery run.
        task = await Fleet.GetTaskAsync(id);
        Assert.Equal(("canceled", 1), (task.GetProperty("status").GetString(), task.GetProperty("attempt").GetInt32()));
        Assert.Single(Regex.Matches(bridge.Celery.Output, $@"\[{id}(\.\d+)?\] received"));
        Assert.False(File.Exists(bridge.PidFile($"{id}.2")));
    }

    [Fact]
    public async Task Timeout_RevokesTheCeleryTask_EndsTimedOut_AndItsPoolProcessIsGone()
    {
        var id = await Fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"Hang @hang"},"timeout_seconds":2,"max_attempts":1}""");
        var pid = await HangingPoolProcessAsync(id);

        var task = await Fleet.WaitForStatusAsync(id, s => s is not ("queued" or "running"), Timeout);

        Assert.Equal("timed_out", task.GetProperty("status").GetString());
        await Wait.UntilAsync(() => !LinuxProcess.IsAlive(pid), TimeSpan.FromSeconds(FleetFixture.CancelGraceSeconds + 2),
            $"the Celery pool process {pid} to be killed");
        await CeleryLogsAsync($"Terminating {id} (9)");
        Assert.Equal("REVOKED", (await CeleryMetaAsync(id))["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task ACeleryWorkerKilledMidTask_MakesTaskManagerRetryIt_AndTheRetrySucceedsOnAnotherCeleryWorker()
    {
        var id = await Fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"Work a while @seconds=3 @steps=6"},"max_attempts":3}""");
        await Wait.ForAsync(() => Fleet.GetTaskAsync(id),
            t => t.GetProperty("progress_message").ValueKind == JsonValueKind.String &&
                 t.GetProperty("progress_message").GetString()!.StartsWith("STAND-IN: step", StringComparison.Ordinal),
            Timeout, "the task to run on the Celery worker");
        var lost = bridge.Celery;

        lost.Kill();
        await bridge.StartCeleryAsync();
        var task = await FinishedAsync(id);

        Assert.True(task.GetProperty("status").GetString() == "succeeded", $"{task}\n{bridge.Output}\n{lost.Output}");
        Assert.Equal(2, task.GetProperty("attempt").GetInt32());
        var first = task.GetProperty("attempts").EnumerateArray().First();
        Assert.Equal("celery_worker_lost", first.GetProperty("error").GetProperty("code").GetString());
        // The retry ran under its own Celery id, with the plain task id as its kwarg.
        Assert.Equal($"{id}.2", task.GetProperty("output").GetProperty("celery_task_id").GetString());
        Assert.Equal(id, task.GetProperty("output").GetProperty("task_id").GetString());
        Assert.Contains($"[{id}.2] received", bridge.Celery.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CeleryFailures_ARetryableOneIsRetried_ANonRetryableOneFailsAtOnce()
    {
        var retryable = await Fleet.SubmitAsync("""{"type":"sd","input":{"prompt":"@fail=retryable @seconds=0.1"},"max_attempts":2}""");
        var fatal = await Fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"@fail=fatal @seconds=0.1"},"max_attempts":3}""");
        var marked = await Fleet.SubmitAsync("""{"type":"tts","input":{"text":"@fail=marked @seconds=0.1"},"max_attempts":3}""");

        var retried = await FinishedAsync(retryable);
        Assert.Equal(("failed", 2), (retried.GetProperty("status").GetString(), retried.GetProperty("attempt").GetInt32()));
        Assert.All(retried.GetProperty("attempts").EnumerateArray(), a =>
        {
            Assert.Equal("celery_task_failed", a.GetProperty("error").GetProperty("code").GetString());
            Assert.StartsWith("RuntimeError: STAND-IN: simulated CUDA out of memory", a.GetProperty("error").GetProperty("message").GetString());
        });
        Assert.Contains($"[{retryable}.2] received", bridge.Celery.Output, StringComparison.Ordinal);

        var once = await FinishedAsync(fatal);
        Assert.Equal(("failed", 1), (once.GetProperty("status").GetString(), once.GetProperty("attempt").GetInt32()));
        Assert.Equal("celery_task_failed", once.GetProperty("error").GetProperty("code").GetString());
        Assert.StartsWith("ValueError: STAND-IN: simulated bad input", once.GetProperty("error").GetProperty("message").GetString());

        var refused = await FinishedAsync(marked);
        Assert.Equal(("failed", 1), (refused.GetProperty("status").GetString(), refused.GetProperty("attempt").GetInt32()));
        Assert.Equal("standin_refused", refused.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task ATtsResultWithAudio_BecomesAnArtifact_ThatDownloadsAsTheCeleryTasksWav()
    {
        var id = await Fleet.SubmitAsync("""{"type":"tts","input":{"text":"Hello from Celery."}}""");
        var task = await FinishedAsync(id);
        Assert.True(task.GetProperty("status").GetString() == "succeeded", $"{task}\n{bridge.Output}");

        var audio = task.GetProperty("output").GetProperty("audio");
        Assert.Equal("audio/wav", audio.GetProperty("content_type").GetString());
        var response = await Fleet.Client.GetAsync(audio.GetProperty("url").GetString());
        response.EnsureSuccessStatusCode();
        Assert.Equal("audio/wav", response.Content.Headers.ContentType?.MediaType);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal("RIFF"u8.ToArray(), bytes[..4]);
        Assert.Equal("WAVE"u8.ToArray(), bytes[8..12]);
        var sent = Convert.FromBase64String((await CeleryMetaAsync(id))["result"]!["audio_base64"]!.GetValue<string>());
        Assert.Equal(sent, bytes);
    }

    /// <summary>Waits for the Celery worker to log <paramref name="line"/> (its output is read as it comes).</summary>
    private Task CeleryLogsAsync(string line) =>
        Wait.UntilAsync(() => bridge.Celery.Output.Contains(line, StringComparison.Ordinal), TimeSpan.FromSeconds(5),
            $"the Celery worker to log '{line}'");

    private async Task<JsonElement> FinishedAsync(string id) =>
        await Fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed" or "canceled" or "timed_out", Timeout);

    /// <summary>The Celery task's entry in the result backend (its status, result and Celery task id).</summary>
    private async Task<JsonObject> CeleryMetaAsync(string celeryId)
    {
        var value = await Fleet.Redis.Connection.GetDatabase(CeleryBridgeFixture.ResultDatabase).StringGetAsync($"celery-task-meta-{celeryId}");
        Assert.False(value.IsNull, $"The result backend has nothing for {celeryId}.");
        return JsonNode.Parse(value.ToString())!.AsObject();
    }

    /// <summary>Waits for a hanging stand-in task to run; returns its pool process id, which it reports and writes down.</summary>
    private async Task<int> HangingPoolProcessAsync(string id)
    {
        var running = await Wait.ForAsync(() => Fleet.GetTaskAsync(id),
            t => t.GetProperty("progress_message").ValueKind == JsonValueKind.String &&
                 HangingIn().IsMatch(t.GetProperty("progress_message").GetString()!),
            Timeout, $"task {id} to hang in a Celery pool process");
        var pid = int.Parse(HangingIn().Match(running.GetProperty("progress_message").GetString()!).Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(bridge.PidFile(id)));
        Assert.True(LinuxProcess.IsAlive(pid), $"The Celery pool process {pid} should be running the task.");
        return pid;
    }

    [GeneratedRegex(@"^STAND-IN: hanging in process (\d+)$")]
    private static partial Regex HangingIn();
}

/// <summary>
/// One fleet (Redis, API, scheduler), a Celery worker running the stand-in on the same redis-server
/// (broker on database 1, results on database 2), and a TaskManager worker with the celery backend
/// in front of it, run by the interpreter that has Celery.
/// </summary>
public sealed class CeleryBridgeFixture : IAsyncLifetime
{
    public const int BrokerDatabase = 1;
    public const int ResultDatabase = 2;
    private const string WorkerName = "celery-bridge";

    private readonly List<CeleryWorker> celeryWorkers = [];
    private string pidFolder = null!;

    public FleetFixture Fleet { get; } = new();

    /// <summary>The Celery worker taking tasks now (the last one started).</summary>
    public CeleryWorker Celery => celeryWorkers[^1];

    /// <summary>The bridge's and the Celery workers' output, for failure messages.</summary>
    public string Output => $"--- TaskManager worker:\n{Fleet.Workers[0].Output}\n--- Celery worker:\n{Celery.Output}";

    public string PidFile(string celeryId) => Path.Combine(pidFolder, $"{celeryId}.pid");

    public async Task InitializeAsync()
    {
        pidFolder = Directory.CreateTempSubdirectory("taskmanager-celery-pids-").FullName;
        await Fleet.InitializeAsync();
        await StartCeleryAsync();
        Fleet.StartWorker(WorkerName, capacity: 3, interpreter: CeleryWorker.Python, environment: new Dictionary<string, string>
        {
            ["TASKMANAGER_BACKEND"] = "celery",
            ["TASKMANAGER_CELERY_BROKER_URL"] = Url(BrokerDatabase),
            ["TASKMANAGER_CELERY_RESULT_BACKEND"] = Url(ResultDatabase),
        });
        await Fleet.WorkerIdAsync(WorkerName);
    }

    /// <summary>Starts another Celery worker (after one was killed); it becomes <see cref="Celery"/>.</summary>
    public async Task StartCeleryAsync() =>
        celeryWorkers.Add(await CeleryWorker.StartAsync(Url(BrokerDatabase), Url(ResultDatabase), pidFolder, concurrency: 3));

    public async Task DisposeAsync()
    {
        foreach (var worker in celeryWorkers)
        {
            await worker.DisposeAsync();
        }
        await Fleet.DisposeAsync();
        TempFolder.Delete(pidFolder);
    }

    private string Url(int database) => $"redis://:{Fleet.Redis.Password}@127.0.0.1:{Fleet.Redis.Port}/{database}";
}
