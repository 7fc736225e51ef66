using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using Hangfire;
using Hangfire.Redis.StackExchange;
using StackExchange.Redis;

namespace HangfirePeer;

/// <summary>
/// Peer benchmark: Hangfire 1.8 with Hangfire.Redis.StackExchange storage against a running Redis.
/// Logs go to stderr; the last line on stdout is one JSON object. See README.md.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        BenchOptions options;
        try
        {
            options = BenchOptions.Parse(args);
        }
        catch (ArgumentException ex)
        {
            await Console.Error.WriteLineAsync($"error: {ex.Message}");
            await Console.Error.WriteLineAsync(BenchOptions.Usage);
            return 2;
        }

        try
        {
            var result = await new Bench(options).RunAsync();
            Console.Out.WriteLine(result.ToJsonString());
            Console.Out.Flush();
            return 0;
        }
        catch (Exception ex)
        {
            await Console.Error.WriteLineAsync($"benchmark failed: {ex}");
            return 1;
        }
    }
}

public sealed record BenchOptions(string Redis, int Jobs, int PickupSamples, int Threads, int Workers, int WarmupJobs)
{
    /// <summary>
    /// 20 workers: Hangfire's own default on a 2-core box would be min(5 x cores, 20) = 10; 20 is its
    /// cap and what a host that wants throughput from no-op jobs would pick. Override with --workers.
    /// </summary>
    public const int DefaultWorkers = 20;

    public const string Usage =
        "usage: HangfirePeer --redis <StackExchange.Redis connection string> [--jobs N=20000] " +
        "[--pickup-samples M=200] [--threads T=4] [--workers W=20] [--warmup-jobs N=500]";

    public static BenchOptions Parse(string[] args)
    {
        string? redis = null;
        int jobs = 20000, samples = 200, threads = 4, workers = DefaultWorkers, warmup = 500;
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (i + 1 >= args.Length)
            {
                throw new ArgumentException($"missing value for {name}");
            }
            var value = args[++i];
            switch (name)
            {
                case "--redis": redis = value; break;
                case "--jobs": jobs = PositiveInt(name, value); break;
                case "--pickup-samples": samples = PositiveInt(name, value); break;
                case "--threads": threads = PositiveInt(name, value); break;
                case "--workers": workers = PositiveInt(name, value); break;
                case "--warmup-jobs": warmup = PositiveInt(name, value); break;
                default: throw new ArgumentException($"unknown argument {name}");
            }
        }
        if (string.IsNullOrWhiteSpace(redis))
        {
            throw new ArgumentException("--redis is required");
        }
        return new BenchOptions(redis, jobs, samples, threads, workers, warmup);
    }

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new ArgumentException($"{name} needs a positive integer, got '{value}'");
}

/// <summary>
/// The job methods. Static so that no activator is involved; the counters are shared in-process with
/// the benchmark, which is how completion and pickup are timed without extra Redis traffic.
/// </summary>
public static class Jobs
{
    private static int s_completed;
    private static int s_target = int.MaxValue;
    private static long s_lastCompletedAt;
    private static TaskCompletionSource<long> s_allDone = NewTcs();
    private static TaskCompletionSource<long> s_pickedUp = NewTcs();

    public static void NoOp()
    {
        if (Interlocked.Increment(ref s_completed) == Volatile.Read(ref s_target))
        {
            var now = Stopwatch.GetTimestamp();
            Volatile.Write(ref s_lastCompletedAt, now);
            Volatile.Read(ref s_allDone).TrySetResult(now);
        }
    }

    public static void Pickup() => Volatile.Read(ref s_pickedUp).TrySetResult(Stopwatch.GetTimestamp());

    /// <summary>Resets the counter; the returned task completes (with a Stopwatch timestamp) when
    /// <paramref name="target"/> NoOp jobs have run. Call only while no NoOp job is in flight.</summary>
    public static Task<long> ArmCompletion(int target)
    {
        var tcs = NewTcs();
        Volatile.Write(ref s_allDone, tcs);
        Volatile.Write(ref s_target, int.MaxValue);
        Interlocked.Exchange(ref s_completed, 0);
        Volatile.Write(ref s_target, target);
        return tcs.Task;
    }

    public static Task<long> ArmPickup()
    {
        var tcs = NewTcs();
        Volatile.Write(ref s_pickedUp, tcs);
        return tcs.Task;
    }

    public static int Completed => Volatile.Read(ref s_completed);

    private static TaskCompletionSource<long> NewTcs() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

public sealed class Bench(BenchOptions options)
{
    private const string Prefix = RedisStorageOptions.DefaultPrefix;
    private const int ClientWarmupJobs = 500;
    private const int PickupWarmup = 5;

    private readonly BenchOptions _options = options;
    private readonly Stopwatch _total = Stopwatch.StartNew();

    public async Task<JsonObject> RunAsync()
    {
        var n = _options.Jobs;
        var hangfireConfig = ConfigurationOptions.Parse(_options.Redis);
        var adminConfig = ConfigurationOptions.Parse(_options.Redis);
        adminConfig.AllowAdmin = true;
        adminConfig.ClientName = "hangfire-peer-admin";
        var db = hangfireConfig.DefaultDatabase ?? 0;

        using var adminMux = await ConnectionMultiplexer.ConnectAsync(adminConfig);
        var admin = new RedisAdmin(adminMux, db);
        admin.FlushDb();

        // The storage gets its own multiplexer, as an application would have.
        using var hangfireMux = await ConnectionMultiplexer.ConnectAsync(hangfireConfig);
        var storage = new RedisStorage(hangfireMux, new RedisStorageOptions { Db = db });
        GlobalConfiguration.Configuration
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings()
            .UseStorage(storage);
        var client = new BackgroundJobClient(storage);

        Log($"hangfire {HangfireVersion()}, redis {admin.ServerVersion}, db {db}, jobs {n}, threads {_options.Threads}, " +
            $"workers {_options.Workers}, pickup samples {_options.PickupSamples}, cores {Environment.ProcessorCount}");

        // Warm up the client path (JIT incl. tier-up, expression caches, connection) and start clean.
        for (var round = 0; round < 2; round++)
        {
            EnqueueConcurrently(client, ClientWarmupJobs, _options.Threads);
            await Task.Delay(300);
        }
        admin.FlushDb();

        // 1) One at a time, no server running. The same run gives the memory per job.
        var memBefore = admin.UsedMemory();
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            client.Enqueue(() => Jobs.NoOp());
        }
        sw.Stop();
        var memAfter = admin.UsedMemory();
        var enqueueOne = n / sw.Elapsed.TotalSeconds;
        var memoryPerJob = (memAfter - memBefore) / (double)n;
        Log($"enqueue one at a time: {n} in {sw.Elapsed.TotalSeconds:F2} s = {enqueueOne:F0}/s; " +
            $"used_memory {memBefore} -> {memAfter} = {memoryPerJob:F0} B/job");

        // 2) T threads concurrently, no server running.
        admin.FlushDb();
        var batchSeconds = EnqueueConcurrently(client, n, _options.Threads);
        var enqueueBatch = n / batchSeconds;
        Log($"enqueue from {_options.Threads} threads: {n} in {batchSeconds:F2} s = {enqueueBatch:F0}/s");

        // 3) End to end with a server in this process.
        admin.FlushDb();
        var serverOptions = new BackgroundJobServerOptions
        {
            WorkerCount = _options.Workers,
            ServerName = $"hangfire-peer:{Environment.ProcessId}",
        };
        double? e2e = null;
        double? commandsPerJob = null;
        double? p50 = null, p95 = null, p99 = null;
        using (var server = new BackgroundJobServer(serverOptions, storage))
        {
            // Ready: every worker has had the chance to fetch and perform (the warm-up drain, as long
            // as TaskManager's and the other peers' in the same run), then let it settle.
            var warmupJobs = Math.Max(_options.Workers * 2, _options.WarmupJobs);
            var warm = Jobs.ArmCompletion(warmupJobs);
            for (var i = 0; i < warmupJobs; i++)
            {
                client.Enqueue(() => Jobs.NoOp());
            }
            await warm.WaitAsync(TimeSpan.FromSeconds(60));
            await WaitForSucceededAsync(admin, warmupJobs, TimeSpan.FromSeconds(60));
            await Task.Delay(1000);
            Log($"server ready ({_options.Workers} workers, warm-up of {warmupJobs} jobs done)");

            var statsBefore = admin.CommandCalls();
            var done = Jobs.ArmCompletion(n);
            var start = Stopwatch.GetTimestamp();
            var producers = Task.Run(() => EnqueueConcurrently(client, n, _options.Threads));
            var timeout = TimeSpan.FromSeconds(Math.Max(120, n / 20.0));
            try
            {
                var end = await done.WaitAsync(timeout);
                var seconds = Stopwatch.GetElapsedTime(start, end).TotalSeconds;
                var enqueueSeconds = await producers;
                e2e = n / seconds;
                Log($"e2e: {n} in {seconds:F2} s = {e2e:F0}/s (enqueueing took {enqueueSeconds:F2} s)");

                // Count the commands until the last job's Succeeded transition is stored too.
                var polls = await WaitForSucceededAsync(admin, warmupJobs + n, TimeSpan.FromSeconds(60));
                var statsAfter = admin.CommandCalls();
                var delta = statsAfter.Total - statsBefore.Total - polls;
                commandsPerJob = delta / (double)n;
                Log($"commands during e2e: {delta} (excluding INFO and {polls} polling GETs) = {commandsPerJob:F1}/job; " +
                    $"top: {string.Join(", ", statsAfter.TopDeltas(statsBefore, 8))}");
            }
            catch (TimeoutException)
            {
                Log($"e2e timed out after {timeout.TotalSeconds:F0} s with {Jobs.Completed}/{n} jobs done; reporting null");
                await producers;
            }

            // 4) Pickup latency against the idle server.
            await Task.Delay(1000);
            var samples = new List<double>(_options.PickupSamples);
            for (var i = 0; i < PickupWarmup + _options.PickupSamples; i++)
            {
                var picked = Jobs.ArmPickup();
                var t0 = Stopwatch.GetTimestamp();
                client.Enqueue(() => Jobs.Pickup());
                var t1 = await picked.WaitAsync(TimeSpan.FromSeconds(30));
                if (i >= PickupWarmup)
                {
                    samples.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                }
            }
            samples.Sort();
            p50 = Percentile(samples, 50);
            p95 = Percentile(samples, 95);
            p99 = Percentile(samples, 99);
            Log($"pickup over {samples.Count} samples: p50 {p50:F2} ms, p95 {p95:F2} ms, p99 {p99:F2} ms, " +
                $"min {samples[0]:F2} ms, max {samples[^1]:F2} ms");

            var stopping = Stopwatch.StartNew();
            server.SendStop();
            server.Dispose();
            Log($"server stopped in {stopping.Elapsed.TotalSeconds:F2} s");
        }

        admin.FlushDb();
        Log($"total {_total.Elapsed.TotalSeconds:F1} s");

        return new JsonObject
        {
            ["peer"] = "hangfire",
            ["version"] = HangfireVersion(),
            ["jobs"] = n,
            ["enqueue_one_per_s"] = Round(enqueueOne, 1),
            ["enqueue_batch_per_s"] = Round(enqueueBatch, 1),
            ["enqueue_batch_kind"] = $"{_options.Threads} threads",
            ["e2e_per_s"] = Round(e2e, 1),
            ["pickup_p50_ms"] = Round(p50, 3),
            ["pickup_p95_ms"] = Round(p95, 3),
            ["pickup_p99_ms"] = Round(p99, 3),
            ["commands_per_job"] = Round(commandsPerJob, 2),
            ["memory_per_job_bytes"] = Round(memoryPerJob, 1),
        };
    }

    /// <summary>Enqueues <paramref name="n"/> NoOp jobs from <paramref name="threads"/> dedicated
    /// threads started together; returns the seconds from release to the last call's return.</summary>
    private static double EnqueueConcurrently(IBackgroundJobClient client, int n, int threads)
    {
        using var gate = new Barrier(threads + 1);
        var workers = new Thread[threads];
        for (var t = 0; t < threads; t++)
        {
            var share = n / threads + (t < n % threads ? 1 : 0);
            workers[t] = new Thread(() =>
            {
                gate.SignalAndWait();
                for (var i = 0; i < share; i++)
                {
                    client.Enqueue(() => Jobs.NoOp());
                }
            })
            { IsBackground = true, Name = $"producer-{t}" };
            workers[t].Start();
        }
        gate.SignalAndWait();
        var start = Stopwatch.GetTimestamp();
        foreach (var worker in workers)
        {
            worker.Join();
        }
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>Polls Hangfire's succeeded counter until it reaches <paramref name="expected"/>;
    /// returns how many GETs it issued so that they can be left out of the command count.</summary>
    private static async Task<long> WaitForSucceededAsync(RedisAdmin admin, long expected, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        long polls = 0;
        while (true)
        {
            polls++;
            if (admin.GetLong(Prefix + "stats:succeeded") >= expected)
            {
                return polls;
            }
            if (sw.Elapsed > timeout)
            {
                Log($"warning: stats:succeeded did not reach {expected} within {timeout.TotalSeconds:F0} s");
                return polls;
            }
            await Task.Delay(20);
        }
    }

    private static double? Percentile(List<double> sorted, double p)
    {
        if (sorted.Count == 0)
        {
            return null;
        }
        var rank = (int)Math.Ceiling(p / 100.0 * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }

    private static double? Round(double? value, int digits) =>
        value is { } v && double.IsFinite(v) ? Math.Round(v, digits) : null;

    private static string HangfireVersion()
    {
        var assembly = typeof(BackgroundJob).Assembly;
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        if (!string.IsNullOrEmpty(informational))
        {
            var plus = informational.IndexOf('+', StringComparison.Ordinal);
            return plus >= 0 ? informational[..plus] : informational;
        }
        return assembly.GetName().Version?.ToString(3) ?? "unknown";
    }

    internal static void Log(string message) =>
        Console.Error.WriteLine($"[{DateTime.UtcNow:HH:mm:ss.fff}] {message}");
}

/// <summary>Admin-side Redis access on its own connection: FLUSHDB, INFO and a counter read.</summary>
public sealed class RedisAdmin(IConnectionMultiplexer mux, int db)
{
    private readonly IServer _server = mux.GetServer(mux.GetEndPoints()[0]);
    private readonly IDatabase _db = mux.GetDatabase(db);

    public string ServerVersion => _server.Version.ToString();

    public void FlushDb() => _server.FlushDatabase(db);

    public long GetLong(string key) => (long?)_db.StringGet(key) ?? 0;

    public long UsedMemory()
    {
        foreach (var line in Lines(_server.InfoRaw("memory")))
        {
            if (line.StartsWith("used_memory:", StringComparison.Ordinal))
            {
                return long.Parse(line["used_memory:".Length..], CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException("INFO memory has no used_memory");
    }

    /// <summary>Calls per command from INFO commandstats, without INFO itself.</summary>
    public CommandStats CommandCalls()
    {
        var calls = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in Lines(_server.InfoRaw("commandstats")))
        {
            // cmdstat_hset:calls=12,usec=34,usec_per_call=2.83,rejected_calls=0,failed_calls=0
            if (!line.StartsWith("cmdstat_", StringComparison.Ordinal))
            {
                continue;
            }
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var name = line["cmdstat_".Length..colon];
            if (name == "info")
            {
                continue;
            }
            foreach (var field in line[(colon + 1)..].Split(','))
            {
                if (field.StartsWith("calls=", StringComparison.Ordinal))
                {
                    calls[name] = long.Parse(field["calls=".Length..], CultureInfo.InvariantCulture);
                }
            }
        }
        return new CommandStats(calls);
    }

    private static IEnumerable<string> Lines(string? info) =>
        (info ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

public sealed record CommandStats(IReadOnlyDictionary<string, long> Calls)
{
    public long Total => Calls.Values.Sum();

    public IEnumerable<string> TopDeltas(CommandStats before, int count) =>
        Calls.Select(kv => (kv.Key, Delta: kv.Value - before.Calls.GetValueOrDefault(kv.Key)))
            .Where(x => x.Delta > 0)
            .OrderByDescending(x => x.Delta)
            .Take(count)
            .Select(x => $"{x.Key} {x.Delta}");
}
