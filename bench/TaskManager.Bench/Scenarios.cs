using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace TaskManager.Bench;

/// <summary>The settings of one benchmark run.</summary>
public sealed record BenchSettings(
    int Jobs,
    TimeSpan SubmitDuration,
    TimeSpan WarmUp,
    int[] Concurrency,
    int PythonWorkers,
    int PythonCapacity,
    int DotnetLoops,
    int DotnetBatch,
    int PickupSamples,
    int FlatLarge,
    int FlatSamples,
    int FlatRounds,
    int IdleWorkers,
    TimeSpan IdleWindow,
    int WebhookJobs,
    int WebhookSamples,
    IReadOnlyDictionary<string, string> SchedulerSettings,
    int[] StreamCounts,
    int StreamTokens,
    int StreamTokensPerSecond,
    int StreamReportMs);

/// <summary>TaskManager's scenarios; each writes its figures into <see cref="Figures"/>.</summary>
public sealed class Scenarios(Deployment deployment, BenchSettings settings, Action<string> say)
{
    public const string NoOpTask = """{"type":"llm","input":{"prompt":"x","max_tokens":1}}""";

    /// <summary>Figures by name, e.g. <c>submit_64_rps</c>.</summary>
    public Dictionary<string, double> Figures { get; } = [];

    /// <summary>What failed without stopping the run (the webhooks that did not all arrive), one line each.</summary>
    public List<string> Failures { get; } = [];

    private static string Batch(int count) =>
        "{\"tasks\":[" + string.Join(",", Enumerable.Repeat(NoOpTask, count)) + "]}";

    // ---- submit ----

    /// <summary>
    /// POST /api/tasks from c keep-alive connections in a closed loop, driven by wrk (a C load
    /// generator, so that the client takes little of the two cores): requests/s, p50, p99.
    /// </summary>
    public async Task SubmitAsync()
    {
        var script = Path.Combine(deployment.Logs, "submit.lua");
        await File.WriteAllTextAsync(script, $$"""
            wrk.method = "POST"
            wrk.body = '{{NoOpTask}}'
            wrk.headers["Content-Type"] = "application/json"
            wrk.headers["Authorization"] = "Bearer {{deployment.ClientKey}}"
            """);
        // A deployment's API runs for days: measure it warm. A fresh process compiles its hot
        // methods again, optimised, over its first seconds under load.
        await WrkAsync(script, 2, 64, settings.WarmUp);
        foreach (var clients in settings.Concurrency)
        {
            await deployment.ResetAsync();
            var threads = Math.Min(clients, 2);
            await WrkAsync(script, threads, clients, TimeSpan.FromSeconds(1)); // the connections open
            var (rps, p50, p99) = await WrkAsync(script, threads, clients, settings.SubmitDuration);
            Figures[$"submit_{clients}_rps"] = rps;
            Figures[$"submit_{clients}_p50_ms"] = p50;
            Figures[$"submit_{clients}_p99_ms"] = p99;
            say($"submit at {clients} connections: {rps:N0}/s, p50 {p50:0.00} ms, p99 {p99:0.00} ms");
        }

        // Batches of 1,000 from two clients, so that one batch is parsed while the other is stored.
        await deployment.ResetAsync();
        using var http = deployment.NewClient(2, deployment.ClientKey);
        var batch = Encoding.UTF8.GetBytes(Batch(1000));
        var batches = Math.Max(4, settings.Jobs / 1000);
        await SendBatchesAsync(http, batch, 2, 2);
        await deployment.ResetAsync();
        var clock = Stopwatch.StartNew();
        await SendBatchesAsync(http, batch, batches, 2);
        Figures["batch_tasks_per_s"] = batches * 1000 / clock.Elapsed.TotalSeconds;
        say($"batches of 1,000: {Figures["batch_tasks_per_s"]:N0} tasks/s");
    }

    private async Task<(double Rps, double P50, double P99)> WrkAsync(string script, int threads, int connections, TimeSpan duration)
    {
        var start = new ProcessStartInfo("wrk")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "-t", threads.ToString(CultureInfo.InvariantCulture), "-c", connections.ToString(CultureInfo.InvariantCulture),
            "-d", $"{duration.TotalSeconds:0}s", "--latency", "-s", script, new Uri(deployment.BaseAddress, "/api/tasks").ToString() })
        {
            start.ArgumentList.Add(argument);
        }
        using var wrk = Process.Start(start) ?? throw new InvalidOperationException("wrk is needed (Debian: apt-get install wrk).");
        var output = await wrk.StandardOutput.ReadToEndAsync();
        await wrk.WaitForExitAsync();
        await File.AppendAllTextAsync(Path.Combine(deployment.Logs, "wrk.log"), output);
        if (output.Contains("Non-2xx", StringComparison.Ordinal) || output.Contains("Socket errors", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("wrk saw errors:\n" + output);
        }
        var rps = double.Parse(Regex.Match(output, @"Requests/sec:\s+([\d.]+)").Groups[1].Value, CultureInfo.InvariantCulture);
        return (rps, WrkLatency(output, "50%"), WrkLatency(output, "99%"));
    }

    /// <summary>A percentile from wrk's latency distribution, in ms (wrk writes us, ms or s).</summary>
    private static double WrkLatency(string output, string percentile)
    {
        var match = Regex.Match(output, $@"^\s+{Regex.Escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        return match.Groups[2].Value switch { "us" => value / 1000, "s" => value * 1000, _ => value };
    }

    private static async Task SendBatchesAsync(HttpClient http, byte[] batch, int batches, int clients)
    {
        var left = batches;
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Decrement(ref left) >= 0)
            {
                using var content = new ByteArrayContent(batch);
                content.Headers.ContentType = new("application/json");
                using var response = await http.PostAsync("/api/tasks/batch", content);
                response.EnsureSuccessStatusCode();
            }
        })));
    }

    // ---- end to end ----

    /// <summary>
    /// Jobs no-op sim tasks, submitted in batches of 1,000 while the workers drain them: tasks/s
    /// from the first submission to the last success. With the Python worker, and separately with
    /// the .NET worker. Each first drains <see cref="EndToEndWarmUpJobs"/> unmeasured, as every
    /// peer does before its own: the steady rate is the one measured, not the API compiling its
    /// worker endpoints (the submit scenario's warm-up does not call them), nor a peer's start.
    /// </summary>
    public async Task EndToEndAsync()
    {
        await deployment.ResetAsync();
        await deployment.StartPythonWorkersAsync(settings.PythonWorkers, settings.PythonCapacity);
        Figures["e2e_python_per_s"] = await SteadyDrainAsync();
        say($"end to end, {settings.PythonWorkers} Python workers x {settings.PythonCapacity}: {Figures["e2e_python_per_s"]:N0} tasks/s");
        await deployment.StopPythonWorkersAsync();

        Figures["e2e_dotnet_per_s"] = await WithDotnetWorkerAsync(SteadyDrainAsync);
        say($"end to end, .NET worker ({settings.DotnetLoops} loops, leases of {settings.DotnetBatch}): {Figures["e2e_dotnet_per_s"]:N0} tasks/s");

        // Cost: Redis commands per task, submitted one at a time (the common path) and in batches.
        foreach (var (name, singles) in new[] { ("commands_per_task", true), ("commands_per_task_batched", false) })
        {
            Figures[name] = await WithDotnetWorkerAsync(async () =>
            {
                var polls = 0L;
                var before = await deployment.Redis.CommandCountAsync();
                await DrainAsync(settings.Jobs, () => { polls++; return Task.CompletedTask; }, singles);
                var after = await deployment.Redis.CommandCountAsync();
                return (after - before - polls) / (double)settings.Jobs;
            });
        }
        say($"Redis commands per task: {Figures["commands_per_task"]:0.0} submitted one at a time, {Figures["commands_per_task_batched"]:0.0} in batches");
    }

    /// <summary>
    /// Tasks drained before an end-to-end measurement of <paramref name="jobs"/> (a whole number of
    /// the batches of 1,000); the peers drain as many before theirs.
    /// </summary>
    public static int EndToEndWarmUpJobs(int jobs) => Math.Clamp(jobs / 10 / 1000 * 1000, 1000, 2000);

    /// <summary>Drains <see cref="EndToEndWarmUpJobs"/> unmeasured, then Jobs: tasks/s of the second drain.</summary>
    private async Task<double> SteadyDrainAsync()
    {
        await DrainAsync(EndToEndWarmUpJobs(settings.Jobs), () => Task.CompletedTask);
        return await DrainAsync(settings.Jobs, () => Task.CompletedTask);
    }

    /// <summary>From an empty store, runs the .NET worker while <paramref name="measure"/> runs.</summary>
    private async Task<double> WithDotnetWorkerAsync(Func<Task<double>> measure)
    {
        await deployment.ResetAsync();
        using var http = deployment.NewClient(settings.DotnetLoops * 2, deployment.WorkerToken);
        using var stop = new CancellationTokenSource();
        var worker = new DotnetWorker(http).RunAsync(settings.DotnetLoops, settings.DotnetBatch, stop.Token);
        await deployment.WaitForWorkersAsync(settings.DotnetLoops, "The .NET workers did not register.");
        var result = await measure();
        await stop.CancelAsync();
        await worker;
        return result;
    }

    /// <summary>Submits and waits until all have succeeded; tasks/s. <paramref name="polled"/> counts each poll (one HGET).</summary>
    private async Task<double> DrainAsync(int jobs, Func<Task> polled, bool singles = false)
    {
        var start = await deployment.SucceededAsync("llm");
        using var http = deployment.NewClient(16, deployment.ClientKey);
        var clock = Stopwatch.StartNew();
        var submitting = singles
            ? SubmitSinglesAsync(http, jobs, 16)
            : SendBatchesAsync(http, Encoding.UTF8.GetBytes(Batch(1000)), jobs / 1000, 1);
        while (await deployment.SucceededAsync("llm") - start < jobs)
        {
            await polled();
            if (clock.Elapsed > TimeSpan.FromMinutes(5))
            {
                throw new TimeoutException($"{jobs} tasks did not finish in 5 minutes.");
            }
            await Task.Delay(5);
        }
        await polled();
        await submitting;
        return jobs / clock.Elapsed.TotalSeconds;
    }

    private static async Task SubmitSinglesAsync(HttpClient http, int jobs, int clients)
    {
        var left = jobs;
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Decrement(ref left) >= 0)
            {
                using var response = await http.PostAsync("/api/tasks", Deployment.Json(NoOpTask));
                response.EnsureSuccessStatusCode();
            }
        })));
    }

    // ---- pickup ----

    /// <summary>
    /// Idle workers waiting; tasks submitted one at a time. With the .NET worker, submit→start is
    /// when its lease answer arrives and submit→done when its complete is answered (one clock). With
    /// the Python worker, start and done are the task's started_at and completed_at (the server's
    /// clock, whole milliseconds) against the moment the bench sent the submission.
    /// </summary>
    public async Task PickupAsync()
    {
        await deployment.ResetAsync();
        using var http = deployment.NewClient(4, deployment.ClientKey);
        using var workerHttp = deployment.NewClient(4, deployment.WorkerToken);
        var worker = new DotnetWorker(workerHttp);
        var workerId = await worker.RegisterAsync("bench-pickup", 1);
        var start = new Latencies();
        var done = new Latencies();
        for (var i = 0; i < settings.PickupSamples + 5; i++)
        {
            var lease = worker.LeaseAsync(workerId, 1, 30);
            await Task.Delay(3); // let the lease park in its long poll: the worker is idle
            var sent = Stopwatch.GetTimestamp();
            using (var response = await http.PostAsync("/api/tasks", Deployment.Json(NoOpTask)))
            {
                response.EnsureSuccessStatusCode();
            }
            var task = (await lease)[0];
            var started = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
            await worker.CompleteAsync(workerId, task.Id, task.Token);
            if (i >= 5)
            {
                start.Add(started);
                done.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
            }
        }
        Record("pickup_dotnet", start, done);

        await deployment.ResetAsync();
        await deployment.StartPythonWorkersAsync(2, 1);
        start = new Latencies();
        done = new Latencies();
        for (var i = 0; i < settings.PickupSamples + 5; i++)
        {
            await Task.Delay(3);
            var sentAt = DateTimeOffset.UtcNow;
            using var response = await http.PostAsync("/api/tasks", Deployment.Json(NoOpTask));
            response.EnsureSuccessStatusCode();
            var id = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString();
            JsonElement task;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            do
            {
                await Task.Delay(2);
                task = JsonDocument.Parse(await http.GetStringAsync($"/api/tasks/{id}")).RootElement;
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"Task {id} did not finish: {task}");
                }
            }
            while (task.GetProperty("status").GetString() != "succeeded");
            if (i >= 5)
            {
                start.Add((task.GetProperty("started_at").GetDateTimeOffset() - sentAt).TotalMilliseconds);
                done.Add((task.GetProperty("completed_at").GetDateTimeOffset() - sentAt).TotalMilliseconds);
            }
        }
        await deployment.StopPythonWorkersAsync();
        Record("pickup_python", start, done);
    }

    private void Record(string name, Latencies start, Latencies done)
    {
        foreach (var p in new[] { 50, 95, 99 })
        {
            Figures[$"{name}_start_p{p}_ms"] = start.Percentile(p);
            Figures[$"{name}_done_p{p}_ms"] = done.Percentile(p);
        }
        say($"{name}: submit→start p50 {start.Percentile(50):0.00} p95 {start.Percentile(95):0.00} p99 {start.Percentile(99):0.00} ms; " +
            $"submit→done p50 {done.Percentile(50):0.00} p95 {done.Percentile(95):0.00} p99 {done.Percentile(99):0.00} ms");
    }

    // ---- cost ----

    /// <summary>Redis memory per queued task: used_memory after submitting Jobs tasks with no worker, less before, per task.</summary>
    public async Task MemoryAsync()
    {
        await deployment.ResetAsync();
        using var http = deployment.NewClient(2, deployment.ClientKey);
        await SendBatchesAsync(http, Encoding.UTF8.GetBytes(Batch(1000)), 1, 1); // the keys that do not grow per task
        var before = await deployment.Redis.UsedMemoryAsync();
        var batches = Math.Max(1, settings.Jobs / 1000);
        await SendBatchesAsync(http, Encoding.UTF8.GetBytes(Batch(1000)), batches, 1);
        var after = await deployment.Redis.UsedMemoryAsync();
        var perTask = (after - before) / (batches * 1000.0);
        // The input as stored (validated and with defaults filled in), which any task must keep.
        var id = JsonDocument.Parse(await http.GetStringAsync("/api/tasks?limit=1")).RootElement.GetProperty("items")[0];
        var inputBytes = Encoding.UTF8.GetByteCount(id.GetProperty("input").GetRawText());
        Figures["memory_per_task_bytes"] = perTask;
        Figures["memory_per_task_beyond_input_bytes"] = perTask - inputBytes;
        say($"Redis memory per queued task: {perTask:N0} B ({perTask - inputBytes:N0} B beyond its {inputBytes} B input)");
    }

    // ---- flat cost ----

    /// <summary>
    /// Submit, get, list (first page) and stats latency with few and with many tasks stored. This
    /// host's speed drifts by tens of percent over a minute, more than the difference looked for, so
    /// the two sizes take turns (FlatRounds rounds each: small, large, large, small, small, large) and
    /// within a round the four calls take turns too; each figure is the median of all its samples.
    /// </summary>
    public async Task FlatCostAsync()
    {
        var operations = new[] { "submit", "get", "list", "stats" };
        var sizes = new[] { 100, settings.FlatLarge };
        var samples = sizes.SelectMany(stored => operations.Select(op => (stored, op))).ToDictionary(k => k, _ => new Latencies());
        // Small, large, large, small, small, large: each size goes first as often as last, so that a
        // drift one way (the API warming up, the host slowing down) favours neither.
        var order = Enumerable.Range(0, settings.FlatRounds).SelectMany(r => r % 2 == 0 ? sizes : sizes.Reverse());
        foreach (var stored in order)
        {
            await deployment.ResetAsync();
            using var http = deployment.NewClient(2, deployment.ClientKey);
            var full = stored / 1000;
            if (full > 0)
            {
                await SendBatchesAsync(http, Encoding.UTF8.GetBytes(Batch(1000)), full, 2);
            }
            if (stored % 1000 > 0)
            {
                await SendBatchesAsync(http, Encoding.UTF8.GetBytes(Batch(stored % 1000)), 1, 1);
            }
            // Filling wrote a lot to the append-only file: let its rewrite happen now, not while measuring.
            await deployment.Redis.RewriteAppendOnlyFileAsync();
            var ids = JsonDocument.Parse(await http.GetStringAsync("/api/tasks?limit=100")).RootElement.GetProperty("items")
                .EnumerateArray().Select(t => t.GetProperty("id").GetString()!).ToArray();
            Task<HttpResponseMessage> Call(string op, int i) => op switch
            {
                "submit" => http.PostAsync("/api/tasks", Deployment.Json(NoOpTask)),
                "get" => http.GetAsync($"/api/tasks/{ids[i % ids.Length]}"),
                "list" => http.GetAsync("/api/tasks?limit=20"),
                _ => http.GetAsync("/api/tasks/stats/metrics"),
            };
            for (var i = 0; i < settings.FlatSamples + 20; i++)
            {
                foreach (var op in operations)
                {
                    var started = Stopwatch.GetTimestamp();
                    using var response = await Call(op, i);
                    response.EnsureSuccessStatusCode();
                    if (i >= 20)
                    {
                        samples[(stored, op)].Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    }
                }
            }
        }
        foreach (var stored in sizes)
        {
            var size = stored == 100 ? "small" : "large";
            foreach (var op in operations)
            {
                Figures[$"flat_{op}_{size}_ms"] = samples[(stored, op)].Percentile(50);
            }
            say($"with {stored:N0} tasks stored ({settings.FlatRounds} round(s)): " + string.Join(", ", operations.Select(op =>
                $"{op} {Figures[$"flat_{op}_{size}_ms"]:0.000} ms")));
        }
    }

    // ---- idle fleet ----

    /// <summary>
    /// IdleWorkers workers long-polling (a lease and a heartbeat each, as the Python worker does) with
    /// nothing to do: CPU of the API and of Redis over a window, then the pickup latency when a task arrives.
    /// </summary>
    public async Task IdleFleetAsync()
    {
        await deployment.ResetAsync();
        var count = settings.IdleWorkers;
        using var workerHttp = deployment.NewClient(count * 2 + 10, deployment.WorkerToken);
        var worker = new DotnetWorker(workerHttp);
        var ids = new string[count];
        for (var i = 0; i < count; i++)
        {
            ids[i] = await worker.RegisterAsync($"bench-idle-{i}", 1);
        }
        using var stop = new CancellationTokenSource();
        var picked = new System.Collections.Concurrent.ConcurrentQueue<long>();
        // A fleet's workers start at different times, so their polls are spread out: worker i's
        // first lease waits 1 + i % W s and its first heartbeat i % W s, then every lease and every
        // (idle) heartbeat waits W, the longest wait the API allows (max_wait_seconds), as the
        // Python worker's do. In step, all 1,000 would fire at once, and a window would catch two
        // bursts of heartbeats or three, and no lease at all.
        var most = worker.MaxWaitSeconds;
        var loops = ids.Select((id, i) => Task.Run(async () =>
        {
            var wait = 1 + (i % most);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var leased = await worker.LeaseAsync(id, 1, wait, stop.Token);
                    wait = most;
                    foreach (var (taskId, token) in leased)
                    {
                        picked.Enqueue(Stopwatch.GetTimestamp());
                        await worker.CompleteAsync(id, taskId, token);
                    }
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        })).Concat(ids.Select((id, i) => Task.Run(async () =>
        {
            var wait = i % most;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await worker.HeartbeatAsync(id, wait, stop.Token);
                    // As the Python worker does while it runs nothing: the longest hold (the API
                    // keeps it alive meanwhile).
                    wait = most;
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }))).ToArray();

        // Let every heartbeat reach its own rhythm (5 s) and every lease park, then measure.
        await Task.Delay(TimeSpan.FromSeconds(6));
        var api0 = deployment.Api.CpuSeconds();
        var redis0 = Child.CpuSecondsOf(deployment.Redis.Pid);
        var clock = Stopwatch.StartNew();
        await Task.Delay(settings.IdleWindow);
        var seconds = clock.Elapsed.TotalSeconds;
        Figures["idle_api_cpu_percent"] = (deployment.Api.CpuSeconds() - api0) / seconds * 100;
        Figures["idle_redis_cpu_percent"] = (Child.CpuSecondsOf(deployment.Redis.Pid) - redis0) / seconds * 100;

        using var http = deployment.NewClient(1, deployment.ClientKey);
        var latencies = new Latencies();
        for (var i = 0; i < 25; i++)
        {
            await Task.Delay(20);
            var sent = Stopwatch.GetTimestamp();
            using var response = await http.PostAsync("/api/tasks", Deployment.Json(NoOpTask));
            response.EnsureSuccessStatusCode();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            long at;
            while (!picked.TryDequeue(out at))
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException("No idle worker picked the task up.");
                }
                await Task.Delay(1);
            }
            if (i >= 5)
            {
                latencies.Add(Stopwatch.GetElapsedTime(sent, at).TotalMilliseconds);
            }
        }
        Figures["idle_pickup_p50_ms"] = latencies.Percentile(50);
        Figures["idle_pickup_p99_ms"] = latencies.Percentile(99);
        say($"{count:N0} idle workers: API {Figures["idle_api_cpu_percent"]:0.0}% of a core, Redis {Figures["idle_redis_cpu_percent"]:0.0}%; " +
            $"pickup p50 {latencies.Percentile(50):0.00} ms, p99 {latencies.Percentile(99):0.00} ms");
        await stop.CancelAsync();
        await Task.WhenAll(loops);
    }

    // ---- webhooks ----

    /// <summary>
    /// WebhookJobs no-op sim tasks, each with a <c>completed</c> webhook (the default filter) to a
    /// receiver in this process (<see cref="WebhookReceiver"/>), submitted in batches of 1,000 while
    /// the Python workers drain them, as in the end-to-end scenario. Measured: deliveries a second
    /// (first receipt to last), completed_at → receipt p50 / p99 (and its two parts, split at the
    /// body's <c>timestamp</c>, when the scheduler made the delivery), the time from the last
    /// completion to the last delivery, the drain's own rate, duplicates. Then WebhookSamples tasks
    /// one at a time, each waited for: the latency with no backlog. First an unmeasured round of
    /// <see cref="WebhookWarmUpJobs"/> warms the scheduler's delivery path and the workers, as the
    /// end-to-end scenario's warm-up does the API's worker endpoints.
    /// </summary>
    public async Task WebhooksAsync()
    {
        await deployment.ResetAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        await deployment.StartPythonWorkersAsync(settings.PythonWorkers, settings.PythonCapacity);
        try
        {
            using var http = deployment.NewClient(16, deployment.ClientKey);
            var warm = WebhookWarmUpJobs(settings.WebhookJobs);
            var warmIds = await SubmitWithWebhooksAsync(http, WebhookBatches(receiver.Url + "/warm/", warm));
            if (!await WaitForDeliveriesAsync(receiver, "warm", warm, null))
            {
                await WebhooksFailedAsync(http, receiver, "warm", warmIds, "the warm-up");
                return;
            }

            // The scheduler's CPU with nothing to deliver (its sweeps, the dispatcher's polls, the idle
            // Hangfire workers), to set beside its CPU per delivery below.
            await Task.Delay(TimeSpan.FromSeconds(1));
            var idleCpu = deployment.Scheduler.CpuSeconds();
            var idleClock = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(3));
            Figures["webhooks_scheduler_idle_cpu_percent"] = (deployment.Scheduler.CpuSeconds() - idleCpu) / idleClock.Elapsed.TotalSeconds * 100;

            var jobs = settings.WebhookJobs;
            var batches = WebhookBatches(receiver.Url + "/hook/", jobs);
            var succeeded = await deployment.SucceededAsync("llm");
            var schedulerCpu = deployment.Scheduler.CpuSeconds();
            var clock = Stopwatch.StartNew();
            var submitting = SubmitWithWebhooksAsync(http, batches);
            var arrived = await WaitForDeliveriesAsync(receiver, "hook", jobs, async () =>
            {
                if (!Figures.ContainsKey("webhooks_e2e_python_per_s") && await deployment.SucceededAsync("llm") - succeeded >= jobs)
                {
                    Figures["webhooks_e2e_python_per_s"] = jobs / clock.Elapsed.TotalSeconds;
                }
            });
            var ids = await submitting;
            // The scheduler's CPU over the round, per task: its dispatcher, the Hangfire workers of
            // the webhooks queue and their sends (its sweeps cost next to nothing).
            Figures["webhooks_scheduler_cpu_us"] = (deployment.Scheduler.CpuSeconds() - schedulerCpu) / jobs * 1e6;
            RecordWebhooks(receiver, ids);
            if (!arrived)
            {
                await WebhooksFailedAsync(http, receiver, "hook", ids, "the measured round");
                return;
            }

            // One at a time, nothing queued: the dispatcher's poll and one delivery. A random pause
            // before each, so that tasks complete at any point of the dispatcher's poll interval: sent
            // right after a delivery, each would complete just after a poll and wait a whole interval.
            var random = new Random(7);
            for (var i = 0; i < settings.WebhookSamples; i++)
            {
                await Task.Delay(random.Next(0, 250));
                var task = NoOpTask[..^1] + $",\"webhook\":\"{receiver.Url}/single/{i}\"}}";
                using (var response = await http.PostAsync("/api/tasks", Deployment.Json(task)))
                {
                    response.EnsureSuccessStatusCode();
                }
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
                while (receiver.Distinct("single") <= i)
                {
                    if (DateTime.UtcNow > deadline)
                    {
                        throw new TimeoutException($"The webhook of task {i} of the one-at-a-time round did not arrive in 30 s.");
                    }
                    await Task.Delay(2);
                }
            }
            var single = new Latencies();
            var singleDispatch = new Latencies();
            foreach (var receipt in receiver.Receipts("single").GroupBy(r => r.TaskId).Select(g => g.MinBy(r => r.ReceivedAt)!))
            {
                single.Add((receipt.ReceivedAt - receipt.CompletedAt!.Value).TotalMilliseconds);
                singleDispatch.Add((receipt.Timestamp!.Value - receipt.CompletedAt!.Value).TotalMilliseconds);
            }
            Figures["webhooks_single_p50_ms"] = single.Percentile(50);
            Figures["webhooks_single_p99_ms"] = single.Percentile(99);
            say($"webhooks one at a time ({settings.WebhookSamples}): completed→receipt p50 {single.Percentile(50):0.0} ms, p99 {single.Percentile(99):0.0} ms " +
                $"(→dispatched p50 {singleDispatch.Percentile(50):0.0} ms, p99 {singleDispatch.Percentile(99):0.0} ms)");
        }
        finally
        {
            await deployment.StopPythonWorkersAsync();
        }
    }

    /// <summary>Tasks with webhooks drained, and their deliveries waited for, before the measured round.</summary>
    public static int WebhookWarmUpJobs(int jobs) => Math.Clamp(jobs / 10, 200, 1000);

    /// <summary>
    /// The batches (of 1,000 at most) of <paramref name="count"/> no-op tasks, task n's webhook
    /// <paramref name="target"/> followed by n; made before the clock starts.
    /// </summary>
    private static List<(int From, byte[] Body)> WebhookBatches(string target, int count)
    {
        var batches = new List<(int, byte[])>();
        for (var from = 0; from < count; from += 1000)
        {
            var body = new StringBuilder("{\"tasks\":[");
            for (var n = from; n < Math.Min(count, from + 1000); n++)
            {
                body.Append(n == from ? "" : ",").Append(NoOpTask, 0, NoOpTask.Length - 1)
                    .Append(",\"webhook\":\"").Append(target).Append(n.ToString(CultureInfo.InvariantCulture)).Append("\"}");
            }
            batches.Add((from, Encoding.UTF8.GetBytes(body.Append("]}").ToString())));
        }
        return batches;
    }

    /// <summary>Sends the batches one after the other (as the end-to-end scenario does); task n's id is the answer's n-th.</summary>
    private static async Task<string[]> SubmitWithWebhooksAsync(HttpClient http, List<(int From, byte[] Body)> batches)
    {
        var ids = new List<string>();
        foreach (var (from, body) in batches)
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new("application/json");
            using var response = await http.PostAsync("/api/tasks/batch", content);
            response.EnsureSuccessStatusCode();
            await using var stream = await response.Content.ReadAsStreamAsync();
            using var answer = await JsonDocument.ParseAsync(stream);
            var items = answer.RootElement.GetProperty("items").EnumerateArray().ToArray();
            if (answer.RootElement.GetProperty("refused").GetInt32() != 0 || ids.Count != from)
            {
                throw new InvalidOperationException($"A batch of tasks with webhooks was refused in part: {answer.RootElement.GetProperty("refused")} refused.");
            }
            ids.AddRange(items.Select(i => i.GetProperty("task").GetProperty("id").GetString()!));
        }
        return [.. ids];
    }

    /// <summary>
    /// Waits until <paramref name="count"/> distinct tasks have had a delivery under
    /// <c>/{segment}/</c>: false when they have not within max(120 s, 50 ms a task), or when none
    /// has come for 60 s. <paramref name="polled"/> runs at each poll (every 20 ms).
    /// </summary>
    private async Task<bool> WaitForDeliveriesAsync(WebhookReceiver receiver, string segment, int count, Func<Task>? polled)
    {
        var limit = TimeSpan.FromSeconds(Math.Max(120, count * 0.05));
        var clock = Stopwatch.StartNew();
        var lastCount = 0;
        var lastChange = TimeSpan.Zero;
        var lastSaid = TimeSpan.Zero;
        while (receiver.Distinct(segment) is var got && got < count)
        {
            if (polled is not null)
            {
                await polled();
            }
            if (got != lastCount)
            {
                (lastCount, lastChange) = (got, clock.Elapsed);
            }
            if (clock.Elapsed > limit || clock.Elapsed - lastChange > TimeSpan.FromSeconds(60))
            {
                return false;
            }
            if (clock.Elapsed - lastSaid > TimeSpan.FromSeconds(10))
            {
                lastSaid = clock.Elapsed;
                say($"webhooks ({segment}): {got:N0} of {count:N0} delivered after {clock.Elapsed.TotalSeconds:0} s");
            }
            await Task.Delay(20);
        }
        if (polled is not null)
        {
            await polled();
        }
        return true;
    }

    /// <summary>The measured round's figures, from the receipts of the tasks <paramref name="ids"/> (task n's webhook was /hook/n).</summary>
    private void RecordWebhooks(WebhookReceiver receiver, string[] ids)
    {
        var index = ids.Select((id, n) => (id, n)).ToDictionary(p => p.id, p => p.n, StringComparer.Ordinal);
        var first = new Dictionary<string, WebhookReceipt>(StringComparer.Ordinal);
        int duplicates = 0, strangers = 0, misrouted = 0;
        foreach (var receipt in receiver.Receipts("hook"))
        {
            if (receipt.TaskId is null || receipt.CompletedAt is null || !index.TryGetValue(receipt.TaskId, out var n))
            {
                strangers++;
                continue;
            }
            if (receipt.Path != $"/hook/{n}")
            {
                misrouted++;
            }
            if (first.TryGetValue(receipt.TaskId, out var earlier))
            {
                duplicates++;
                if (receipt.ReceivedAt >= earlier.ReceivedAt)
                {
                    continue;
                }
            }
            first[receipt.TaskId] = receipt;
        }
        Figures["webhooks_delivered"] = first.Count;
        Figures["webhooks_duplicates"] = duplicates;
        Figures["webhooks_strangers"] = strangers + misrouted;
        if (first.Count < 2)
        {
            return;
        }
        var total = new Latencies();
        var dispatch = new Latencies();
        var send = new Latencies();
        foreach (var receipt in first.Values)
        {
            total.Add((receipt.ReceivedAt - receipt.CompletedAt!.Value).TotalMilliseconds);
            if (receipt.Timestamp is { } made)
            {
                dispatch.Add((made - receipt.CompletedAt!.Value).TotalMilliseconds);
                send.Add((receipt.ReceivedAt - made).TotalMilliseconds);
            }
        }
        var firstAt = first.Values.Min(r => r.ReceivedAt);
        var lastAt = first.Values.Max(r => r.ReceivedAt);
        var lastCompleted = first.Values.Max(r => r.CompletedAt!.Value);
        var firstCompleted = first.Values.Min(r => r.CompletedAt!.Value);
        Figures["webhooks_per_s"] = (first.Count - 1) / (lastAt - firstAt).TotalSeconds;
        Figures["webhooks_completions_per_s"] = (first.Count - 1) / (lastCompleted - firstCompleted).TotalSeconds;
        Figures["webhooks_p50_ms"] = total.Percentile(50);
        Figures["webhooks_p99_ms"] = total.Percentile(99);
        Figures["webhooks_dispatch_p50_ms"] = dispatch.Percentile(50);
        Figures["webhooks_dispatch_p99_ms"] = dispatch.Percentile(99);
        Figures["webhooks_send_p50_ms"] = send.Percentile(50);
        Figures["webhooks_send_p99_ms"] = send.Percentile(99);
        Figures["webhooks_tail_s"] = (lastAt - lastCompleted).TotalSeconds;
        say($"webhooks: {first.Count:N0} of {ids.Length:N0} delivered, {Figures["webhooks_per_s"]:N0}/s (tasks completed at " +
            $"{Figures["webhooks_completions_per_s"]:N0}/s; drain {Figures.GetValueOrDefault("webhooks_e2e_python_per_s", double.NaN):N0} tasks/s); " +
            $"completed→receipt p50 {total.Percentile(50):N0} ms, p99 {total.Percentile(99):N0} ms " +
            $"(→dispatched p50 {dispatch.Percentile(50):N0} / p99 {dispatch.Percentile(99):N0}, dispatched→receipt p50 {send.Percentile(50):N0} / p99 {send.Percentile(99):N0}); " +
            $"last completion → last delivery {Figures["webhooks_tail_s"]:0.00} s; {duplicates} duplicate(s), {strangers + misrouted} unexpected; " +
            $"scheduler CPU {Figures.GetValueOrDefault("webhooks_scheduler_cpu_us", double.NaN):N0} µs a delivery " +
            $"({Figures.GetValueOrDefault("webhooks_scheduler_idle_cpu_percent", double.NaN):0.0}% of a core idle)");
    }

    /// <summary>
    /// Not all deliveries arrived: writes what the API says of the missing ones (each task's status
    /// and its deliveries, from GET /api/tasks/{id}/webhooks) to webhooks-missing.txt, counts their
    /// delivery states, and adds a failure line. The run goes on, so that its other figures are kept.
    /// </summary>
    private async Task WebhooksFailedAsync(HttpClient http, WebhookReceiver receiver, string segment, string[] ids, string round)
    {
        var received = receiver.Receipts(segment).Select(r => r.TaskId).ToHashSet(StringComparer.Ordinal);
        var missing = ids.Where(id => !received.Contains(id)).ToArray();
        var states = new Dictionary<string, int>(StringComparer.Ordinal);
        var file = Path.Combine(deployment.Logs, "webhooks-missing.txt");
        await using (var log = new StreamWriter(file))
        {
            foreach (var id in missing.Take(200))
            {
                var task = JsonDocument.Parse(await http.GetStringAsync($"/api/tasks/{id}")).RootElement;
                var deliveries = await http.GetStringAsync($"/api/tasks/{id}/webhooks");
                var state = string.Join("+", JsonDocument.Parse(deliveries).RootElement.GetProperty("deliveries").EnumerateArray()
                    .Select(d => $"{d.GetProperty("state").GetString()} ({d.GetProperty("attempts").GetArrayLength()} attempt(s))")
                    .DefaultIfEmpty("none made"));
                var key = $"task {task.GetProperty("status").GetString()}, delivery {state}";
                states[key] = states.GetValueOrDefault(key) + 1;
                await log.WriteLineAsync($"{id} {task.GetProperty("status").GetString()} completed_at={task.GetProperty("completed_at")} webhooks={deliveries}");
            }
        }
        var failure = $"webhooks, {round}: {ids.Length - missing.Length:N0} of {ids.Length:N0} tasks' deliveries arrived " +
            $"({receiver.Receipts(segment).Count:N0} received in all); of {Math.Min(200, missing.Length)} missing looked at: " +
            string.Join(", ", states.Select(s => $"{s.Value} {s.Key}")) + $". Details in {file}, the scheduler's log in {deployment.Logs}/scheduler.log.";
        Figures["webhooks_missing"] = missing.Length;
        Failures.Add(failure);
        say("FAILED: " + failure);
    }

    // ---- streams ----

    /// <summary>
    /// For each count in StreamCounts, that many <c>POST /v1/chat/completions</c> with
    /// <c>stream: true</c> and <c>max_tokens</c> StreamTokens sent at once from this process, read
    /// as server-sent events, while the in-bench <see cref="StreamWorker"/> makes each task's tokens
    /// at StreamTokensPerSecond and reports them as the Python worker does. Measured over the steady
    /// part (every stream has had its first chunk, none has had its last): chunks received a second;
    /// report→receipt p50 / p99 over every chunk (the worker's report sent → the client read the
    /// chunk's line; one clock), and over the chunks received in the steady part only; CPU of the API, Redis and the bench process (its clients and worker);
    /// how many streams ended with all their tokens and <c>[DONE]</c>. An unmeasured round of a few
    /// short streams first warms the /v1 and progress paths.
    /// </summary>
    public async Task StreamsAsync()
    {
        await StreamRoundAsync(Math.Min(50, settings.StreamCounts.Min()), Math.Min(20, settings.StreamTokens), null);
        foreach (var count in settings.StreamCounts)
        {
            await StreamRoundAsync(count, settings.StreamTokens, $"streams_{count}");
        }
    }

    private async Task StreamRoundAsync(int count, int tokens, string? name)
    {
        await deployment.ResetAsync();
        using var workerHttp = deployment.NewClient(count + 64, deployment.WorkerToken);
        var worker = new StreamWorker(workerHttp, settings.StreamTokensPerSecond, settings.StreamReportMs);
        using var stop = new CancellationTokenSource();
        const int capacity = 100;
        var workers = (count + capacity - 1) / capacity;
        var running = worker.RunAsync(workers, capacity, stop.Token);
        await deployment.WaitForWorkersAsync(workers, "The stream workers did not register.");

        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = count + 16,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            UseProxy = false,
        };
        using var http = new HttpClient(handler) { BaseAddress = deployment.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.Authorization = new("Bearer", deployment.ClientKey);
        var body = $$"""{"messages":[{"role":"user","content":"hi"}],"max_tokens":{{tokens}},"stream":true}""";
        // Long enough for a round far slower than planned, bounded so that a stuck stream ends the round.
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60 + tokens / (double)settings.StreamTokensPerSecond * 6));

        // CPU of the API, Redis and this process every 100 ms, to be read at the window's bounds.
        var cpu = new List<(long At, double Api, double Redis, double Bench)>();
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                var sample = (Stopwatch.GetTimestamp(), deployment.Api.CpuSeconds(), Child.CpuSecondsOf(deployment.Redis.Pid),
                    Child.CpuSecondsOf(Environment.ProcessId));
                lock (cpu)
                {
                    cpu.Add(sample);
                }
                try
                {
                    await Task.Delay(100, sampling.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });

        var began = Stopwatch.GetTimestamp();
        var streams = await Task.WhenAll(Enumerable.Range(0, count).Select(_ => Task.Run(() => OneStreamAsync(http, body, limit.Token))));
        await sampling.CancelAsync();
        await sampler;
        await stop.CancelAsync();
        await running;
        if (name is null)
        {
            return;
        }

        var complete = streams.Count(s => s.Done && s.Error is null && s.Receipts.Count == tokens);
        var errors = streams.Where(s => s.Error is not null).Select(s => s.Error!).ToArray();
        Figures[$"{name}_complete"] = complete;
        Figures[$"{name}_refused_reports"] = worker.Refused;
        var withChunks = streams.Where(s => s.Receipts.Count > 0).ToArray();
        if (withChunks.Length == 0)
        {
            Failures.Add($"streams, {count}: no chunk arrived ({errors.FirstOrDefault()})");
            return;
        }

        // The steady part: every stream has had its first chunk, and none has had its last. When
        // there is none (the first stream ended before the last began), the whole round.
        var allStarted = withChunks.Max(s => s.Receipts[0]);
        var firstEnded = withChunks.Min(s => s.Receipts[^1]);
        var steady = complete == count && firstEnded > allStarted;
        var (from, to) = steady ? (allStarted, firstEnded) : (withChunks.Min(s => s.Receipts[0]), withChunks.Max(s => s.Receipts[^1]));
        var seconds = Stopwatch.GetElapsedTime(from, to).TotalSeconds;
        var inWindow = withChunks.Sum(s => s.Receipts.Count(r => r >= from && r <= to));
        Figures[$"{name}_chunks_per_s"] = inWindow / seconds;
        Figures[$"{name}_window_s"] = seconds;
        Figures[$"{name}_steady"] = steady ? 1 : 0;

        var reported = new Latencies();
        var made = new Latencies();
        var answered = new Latencies();
        var steadyReported = new Latencies();
        var firstChunk = new Latencies();
        var unmatched = 0;
        foreach (var s in withChunks)
        {
            firstChunk.Add(Stopwatch.GetElapsedTime(s.Sent, s.Receipts[0]).TotalMilliseconds);
            if (s.TaskId is null || !worker.Chunks.TryGetValue(s.TaskId, out var times))
            {
                unmatched++;
                continue;
            }
            for (var i = 0; i < Math.Min(s.Receipts.Count, times.Reported.Length); i++)
            {
                var latency = Stopwatch.GetElapsedTime(times.Reported[i], s.Receipts[i]).TotalMilliseconds;
                reported.Add(latency);
                if (s.Receipts[i] >= from && s.Receipts[i] <= to)
                {
                    steadyReported.Add(latency);
                }
                made.Add(Stopwatch.GetElapsedTime(times.Made[i], s.Receipts[i]).TotalMilliseconds);
                answered.Add(Stopwatch.GetElapsedTime(times.Reported[i], times.Answered[i]).TotalMilliseconds);
            }
        }
        foreach (var p in new[] { 50, 99 })
        {
            Figures[$"{name}_p{p}_ms"] = reported.Percentile(p);
            Figures[$"{name}_made_p{p}_ms"] = made.Percentile(p);
            Figures[$"{name}_first_p{p}_ms"] = firstChunk.Percentile(p);
            Figures[$"{name}_answered_p{p}_ms"] = answered.Percentile(p);
            Figures[$"{name}_steady_p{p}_ms"] = steadyReported.Percentile(p);
        }
        // Reports over the whole round (the worker sends one per task at a time, so under load each carries more chunks).
        Figures[$"{name}_chunks_per_report"] = count * (double)tokens / worker.Reports;

        (long At, double Api, double Redis, double Bench) At(long t, bool after)
        {
            lock (cpu)
            {
                return after ? cpu.FirstOrDefault(c => c.At >= t, cpu[^1]) : cpu.LastOrDefault(c => c.At <= t, cpu[0]);
            }
        }
        var (c0, c1) = (At(from, after: true), At(to, after: false));
        if (c1.At <= c0.At)
        {
            (c0, c1) = (cpu[0], cpu[^1]);
        }
        var cpuSeconds = Stopwatch.GetElapsedTime(c0.At, c1.At).TotalSeconds;
        Figures[$"{name}_api_cpu_percent"] = (c1.Api - c0.Api) / cpuSeconds * 100;
        Figures[$"{name}_redis_cpu_percent"] = (c1.Redis - c0.Redis) / cpuSeconds * 100;
        Figures[$"{name}_bench_cpu_percent"] = (c1.Bench - c0.Bench) / cpuSeconds * 100;
        Figures[$"{name}_round_s"] = Stopwatch.GetElapsedTime(began).TotalSeconds;

        say($"{count:N0} streams of {tokens} tokens at {settings.StreamTokensPerSecond}/s: {complete:N0} complete; " +
            $"{Figures[$"{name}_chunks_per_s"]:N0} chunks/s over {seconds:0.0} s ({(steady ? "steady part" : "whole round: no steady part")}; " +
            $"{count * settings.StreamTokensPerSecond:N0} planned); report→receipt p50 {reported.Percentile(50):0.0} ms, p99 {reported.Percentile(99):0.0} ms; " +
            $"steady part only p50 {steadyReported.Percentile(50):0.0} ms, p99 {steadyReported.Percentile(99):0.0} ms; " +
            $"of which the report answered p50 {answered.Percentile(50):0.0}, p99 {answered.Percentile(99):0.0} ms; " +
            $"{Figures[$"{name}_chunks_per_report"]:0.00} chunks a report; " +
            $"made→receipt p50 {made.Percentile(50):0.0}, p99 {made.Percentile(99):0.0} ms; first chunk p50 {firstChunk.Percentile(50):0} ms, p99 {firstChunk.Percentile(99):0} ms; " +
            $"CPU API {Figures[$"{name}_api_cpu_percent"]:0}%, Redis {Figures[$"{name}_redis_cpu_percent"]:0}%, bench {Figures[$"{name}_bench_cpu_percent"]:0}% of a core; " +
            $"{worker.Refused} report(s) refused, {unmatched} stream(s) without a task");
        if (complete < count)
        {
            Failures.Add($"streams, {count}: {complete:N0} of {count:N0} streams ended with {tokens} chunks and [DONE]; " +
                $"{errors.Length} error(s){(errors.Length > 0 ? ", the first: " + errors[0] : "")}; " +
                $"chunks received per stream from {streams.Min(s => s.Receipts.Count)} to {streams.Max(s => s.Receipts.Count)}");
        }
    }

    /// <summary>One streamed chat completion: when it was sent, its task, when each content chunk's line was read, whether it ended with [DONE].</summary>
    private sealed record StreamRead(long Sent, string? TaskId, List<long> Receipts, bool Done, string? Error);

    private static async Task<StreamRead> OneStreamAsync(HttpClient http, string body, CancellationToken limit)
    {
        var receipts = new List<long>(256);
        var sent = Stopwatch.GetTimestamp();
        string? taskId = null;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Deployment.Json(body) };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, limit);
            if (!response.IsSuccessStatusCode)
            {
                return new(sent, null, receipts, false, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(limit)}");
            }
            taskId = response.Headers.TryGetValues("X-TaskManager-Task-Id", out var ids) ? ids.First() : null;
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(limit));
            while (await reader.ReadLineAsync(limit) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    continue;
                }
                if (line == "data: [DONE]")
                {
                    return new(sent, taskId, receipts, true, null);
                }
                // Not parsed: the clients share the two cores with what they measure.
                if (line.Contains("\"content\":", StringComparison.Ordinal))
                {
                    receipts.Add(Stopwatch.GetTimestamp());
                }
                else if (line.Contains("\"error\"", StringComparison.Ordinal))
                {
                    return new(sent, taskId, receipts, false, line);
                }
            }
            return new(sent, taskId, receipts, false, "the stream ended without [DONE]");
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
        {
            return new(sent, taskId, receipts, false, e.GetType().Name + ": " + e.Message);
        }
    }

    public static string Format(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);
}
