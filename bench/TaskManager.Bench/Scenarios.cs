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
    TimeSpan IdleWindow);

/// <summary>TaskManager's scenarios; each writes its figures into <see cref="Figures"/>.</summary>
public sealed class Scenarios(Deployment deployment, BenchSettings settings, Action<string> say)
{
    public const string NoOpTask = """{"type":"llm","input":{"prompt":"x","max_tokens":1}}""";

    /// <summary>Figures by name, e.g. <c>submit_64_rps</c>.</summary>
    public Dictionary<string, double> Figures { get; } = [];

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

    public static string Format(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);
}
