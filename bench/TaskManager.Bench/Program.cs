using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using TaskManager.Bench;

// TaskManager's benchmark: see bench/README.md. Run through bench/run, which builds what it needs.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
var quick = args.Contains("--quick");
var runs = Option("--runs", quick ? 1 : 3);
var jobs = Option("--jobs", quick ? 2_000 : 20_000);
var skipPeers = args.Contains("--no-peers");
// The scheduler's webhook settings, where given: by default it runs with the API's defaults.
var schedulerSettings = new Dictionary<string, string>();
if (OptionText("--webhook-concurrency") is { } webhookConcurrency)
{
    schedulerSettings["TaskManager__Webhooks__Concurrency"] = webhookConcurrency;
}
if (OptionText("--webhook-poll-ms") is { } webhookPoll)
{
    schedulerSettings["TaskManager__Webhooks__PollIntervalMs"] = webhookPoll;
}
var only = OptionText("--only")?.Split(',') ?? ["submit", "e2e", "pickup", "memory", "flat", "idle", "webhooks", "streams"];
var peers = (OptionText("--peers")?.Split(',') ?? Peers.Names).Where(_ => !skipPeers).ToArray();
var settings = new BenchSettings(
    Jobs: jobs,
    SubmitDuration: TimeSpan.FromSeconds(quick ? 3 : 6),
    WarmUp: TimeSpan.FromSeconds(quick ? 8 : 20),
    Concurrency: [1, 16, 64, 256],
    PythonWorkers: Option("--python-workers", 2),
    PythonCapacity: Option("--python-capacity", 16),
    DotnetLoops: Option("--dotnet-loops", 8),
    DotnetBatch: Option("--dotnet-batch", 32),
    // 1,000: a p99 of 200 samples is their second-slowest, one hiccup of the host; of 1,000, the tenth.
    PickupSamples: Option("--pickup-samples", quick ? 100 : 1_000),
    FlatLarge: quick ? 20_000 : 100_000,
    FlatSamples: quick ? 100 : 200,
    FlatRounds: quick ? 2 : 3,
    IdleWorkers: Option("--idle-workers", quick ? 200 : 1_000),
    IdleWindow: TimeSpan.FromSeconds(Option("--idle-seconds", quick ? 5 : 30)),
    WebhookJobs: Option("--webhook-jobs", quick ? 2_000 : 10_000),
    WebhookSamples: quick ? 30 : 100,
    SchedulerSettings: schedulerSettings,
    StreamCounts: OptionText("--streams")?.Split(',').Select(n => int.Parse(n, CultureInfo.InvariantCulture)).ToArray() ?? (quick ? [100] : [100, 1_000]),
    StreamTokens: Option("--stream-tokens", 200),
    StreamTokensPerSecond: Option("--stream-tokens-per-second", 20),
    // As the Python worker reports a task's chunks: the first at once, then at most every 100 ms.
    StreamReportMs: Option("--stream-report-ms", 100));

var root = FindRoot();
var logs = Path.Combine(root, "bench", ".logs", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
Directory.CreateDirectory(logs);
var clock = Stopwatch.StartNew();
void Say(string line) => Console.Error.WriteLine($"[{clock.Elapsed:mm\\:ss}] {line}");
Say($"logs in {logs}; {runs} run(s) of {jobs:N0} jobs{(quick ? " (quick)" : "")}");

var ours = new List<Dictionary<string, double>>();
var failures = new List<string>();
var theirs = peers.ToDictionary(p => p, _ => new List<Dictionary<string, double>>());
string redisVersion = "";
for (var run = 1; run <= runs; run++)
{
    Say($"run {run} of {runs}: TaskManager");
    await using (var redis = await Redis.StartAsync(logs))
    {
        redisVersion = redis.Version;
        await using var deployment = await Deployment.StartAsync(redis, root, logs, schedulerSettings);
        var scenarios = new Scenarios(deployment, settings, Say);
        foreach (var (name, scenario) in new (string, Func<Task>)[]
        {
            ("submit", scenarios.SubmitAsync), ("e2e", scenarios.EndToEndAsync), ("pickup", scenarios.PickupAsync),
            ("memory", scenarios.MemoryAsync), ("flat", scenarios.FlatCostAsync), ("idle", scenarios.IdleFleetAsync),
            ("webhooks", scenarios.WebhooksAsync), ("streams", scenarios.StreamsAsync),
        })
        {
            if (only.Contains(name))
            {
                await scenario();
            }
        }
        ours.Add(scenarios.Figures);
        failures.AddRange(scenarios.Failures.Select(f => $"run {run}: {f}"));
    }
    foreach (var peer in peers)
    {
        Say($"run {run} of {runs}: {peer}");
        await using var redis = await Redis.StartAsync(logs);
        if (await Peers.RunAsync(peer, root, redis, jobs, settings.PickupSamples, logs, Say) is { } figures)
        {
            theirs[peer].Add(figures);
        }
    }
}

var report = Report.Markdown(Medians(ours), theirs.ToDictionary(p => p.Key, p => Medians(p.Value)), settings, runs, quick, redisVersion, failures);
Console.WriteLine(report);
await File.WriteAllTextAsync(Path.Combine(logs, "report.md"), report);
Say($"done in {clock.Elapsed:mm\\:ss}; the table is also in {logs}/report.md");
foreach (var failure in failures)
{
    Say("FAILED: " + failure);
}
return failures.Count == 0 ? 0 : 1;

static Dictionary<string, double> Medians(List<Dictionary<string, double>> runs) =>
    runs.SelectMany(r => r.Keys).Distinct().ToDictionary(k => k, k => Median.Of(runs.Where(r => r.ContainsKey(k)).Select(r => r[k])));

int Option(string name, int fallback) => OptionText(name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

string? OptionText(string name)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
}

static string FindRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "TaskManager.sln")))
        {
            return dir.FullName;
        }
    }
    throw new InvalidOperationException("Run the bench from inside the repository.");
}

/// <summary>The markdown the bench prints: the comparison with the peers, the targets, and TaskManager's own figures.</summary>
internal static class Report
{
    public static string Markdown(Dictionary<string, double> tm, Dictionary<string, Dictionary<string, double>> peers,
        BenchSettings settings, int runs, bool quick, string redisVersion, IReadOnlyList<string> failures)
    {
        var md = new StringBuilder();
        md.AppendLine($"### TaskManager benchmark{(quick ? " (quick)" : "")}, {DateTime.UtcNow:yyyy-MM-dd}");
        md.AppendLine();
        md.AppendLine($"Machine: {Machine()}; Redis {redisVersion} on loopback (AOF everysec, password); .NET {Environment.Version}. " +
            $"{settings.Jobs:N0} jobs, medians of {runs} run(s).");
        md.AppendLine();

        double P(string peer, string key) => peers.TryGetValue(peer, out var f) && f.TryGetValue(key, out var v) ? v : double.NaN;
        double T(string key) => tm.TryGetValue(key, out var v) ? v : double.NaN;
        string Peer(string peer) => peers.ContainsKey(peer) ? $"{Cap(peer)} {Peers.Versions.GetValueOrDefault(peer, "")}".Trim() : Cap(peer) + " (not run)";

        md.AppendLine($"| | TaskManager | {Peer("celery")} | {Peer("bullmq")} | {Peer("hangfire")} |");
        md.AppendLine("|---|---|---|---|---|");
        Row(md, "enqueue one at a time (jobs/s; TaskManager: `POST /api/tasks`, 1 HTTP client)", Rate(T("submit_1_rps")),
            Rate(P("celery", "enqueue_one_per_s")), Rate(P("bullmq", "enqueue_one_per_s")), Rate(P("hangfire", "enqueue_one_per_s")));
        Row(md, "enqueue concurrent (TaskManager: 64 HTTP clients; Hangfire: 4 threads)", Rate(T("submit_64_rps")),
            "—", "—", Rate(P("hangfire", "enqueue_batch_per_s")));
        Row(md, "enqueue in bulk (TaskManager: `POST /api/tasks/batch` of 1,000; BullMQ: `addBulk`)", Rate(T("batch_tasks_per_s")),
            "—", Rate(P("bullmq", "enqueue_batch_per_s")), "—");
        Row(md, "end to end, steady (jobs/s; TaskManager: Python worker)", Rate(T("e2e_python_per_s")),
            Rate(P("celery", "e2e_per_s")), Rate(P("bullmq", "e2e_per_s")), Rate(P("hangfire", "e2e_per_s")));
        Row(md, "end to end, steady, TaskManager with the minimal .NET worker", Rate(T("e2e_dotnet_per_s")), "", "", "");
        Row(md, "idle pickup, submit→start p50 / p99 (ms; TaskManager: .NET worker, one clock)",
            Ms2(T("pickup_dotnet_start_p50_ms"), T("pickup_dotnet_start_p99_ms")),
            Ms2(P("celery", "pickup_p50_ms"), P("celery", "pickup_p99_ms")), Ms2(P("bullmq", "pickup_p50_ms"), P("bullmq", "pickup_p99_ms")),
            Ms2(P("hangfire", "pickup_p50_ms"), P("hangfire", "pickup_p99_ms")));
        Row(md, "idle pickup, TaskManager with the Python worker (start: the server's lease time)", Ms2(T("pickup_python_start_p50_ms"), T("pickup_python_start_p99_ms")), "", "", "");
        Row(md, "Redis commands per job (TaskManager: submitted one at a time / in batches)",
            $"{Num(T("commands_per_task"))} / {Num(T("commands_per_task_batched"))}",
            Num(P("celery", "commands_per_job")), Num(P("bullmq", "commands_per_job")), Num(P("hangfire", "commands_per_job")));
        Row(md, "Redis memory per queued job (bytes; TaskManager: all / beyond its input)",
            $"{Num(T("memory_per_task_bytes"))} / {Num(T("memory_per_task_beyond_input_bytes"))}",
            Num(P("celery", "memory_per_job_bytes")), Num(P("bullmq", "memory_per_job_bytes")), Num(P("hangfire", "memory_per_job_bytes")));
        md.AppendLine();

        md.AppendLine("**Targets**, from the figures above:");
        md.AppendLine();
        md.AppendLine("| target | measured | met |");
        md.AppendLine("|---|---|---|");
        var submit64 = T("submit_64_rps");
        Target(md, "submit at 64 connections ≥ 2× Celery `apply_async`", Ratio(submit64, P("celery", "enqueue_one_per_s")), 2);
        Target(md, "submit at 64 connections ≥ 5× Hangfire enqueue", Ratio(submit64, P("hangfire", "enqueue_one_per_s")), 5);
        Target(md, "submit at 64 connections ≥ 1× BullMQ awaited `add`", Ratio(submit64, P("bullmq", "enqueue_one_per_s")), 1);
        Check(md, "submit p99 at 64 connections < 25 ms", $"{Num(T("submit_64_p99_ms"))} ms", T("submit_64_p99_ms") < 25);
        Target(md, "batch submission ≥ BullMQ `addBulk`", Ratio(T("batch_tasks_per_s"), P("bullmq", "enqueue_batch_per_s")), 1);
        Target(md, "end to end, Python worker ≥ 2× Celery", Ratio(T("e2e_python_per_s"), P("celery", "e2e_per_s")), 2);
        Target(md, "end to end, Python worker ≥ 5× Hangfire", Ratio(T("e2e_python_per_s"), P("hangfire", "e2e_per_s")), 5);
        Target(md, "end to end, .NET worker ≥ BullMQ", Ratio(T("e2e_dotnet_per_s"), P("bullmq", "e2e_per_s")), 1);
        var bestP50 = peers.Keys.Select(p => P(p, "pickup_p50_ms")).Where(v => !double.IsNaN(v)).DefaultIfEmpty(double.NaN).Min();
        var bestP99 = peers.Keys.Select(p => P(p, "pickup_p99_ms")).Where(v => !double.IsNaN(v)).DefaultIfEmpty(double.NaN).Min();
        // Judged on the .NET worker's figures: one clock, and the start is when the worker has the
        // task in hand, as the peers' jobs record their own start. The Python worker's are the
        // server's lease time, before the answer reaches the worker.
        Check(md, "idle pickup p50 no worse than the best peer's (.NET worker)", $"{Num(T("pickup_dotnet_start_p50_ms"))} vs {Num(bestP50)} ms",
            T("pickup_dotnet_start_p50_ms") <= bestP50);
        Check(md, "idle pickup p99 no worse than the best peer's (.NET worker)", $"{Num(T("pickup_dotnet_start_p99_ms"))} vs {Num(bestP99)} ms",
            T("pickup_dotnet_start_p99_ms") <= bestP99);
        // Both ways of working are shown: tasks in batches (submitted 1,000 at a time, leased and
        // completed 32 at a time), where the per-call costs are shared, and one at a time.
        Check(md, "at most 6 Redis commands per task, in batches", Num(T("commands_per_task_batched")), T("commands_per_task_batched") <= 6);
        Check(md, "at most 6 Redis commands per task, one at a time", Num(T("commands_per_task")), T("commands_per_task") <= 6);
        Check(md, "at most 300 B of Redis memory per queued task beyond its input", $"{Num(T("memory_per_task_beyond_input_bytes"))} B",
            T("memory_per_task_beyond_input_bytes") <= 300);
        foreach (var op in new[] { "submit", "get", "list", "stats" })
        {
            var ratio = T($"flat_{op}_large_ms") / T($"flat_{op}_small_ms");
            Check(md, $"{op} at {settings.FlatLarge:N0} stored within 10% of at 100", $"{Num(T($"flat_{op}_large_ms"))} vs {Num(T($"flat_{op}_small_ms"))} ms (×{ratio:0.00})",
                ratio <= 1.10);
        }
        var idle = T("idle_api_cpu_percent") + T("idle_redis_cpu_percent");
        Check(md, $"{settings.IdleWorkers:N0} idle long-polling workers cost < 5% of a core", $"{Num(idle)}% (API {Num(T("idle_api_cpu_percent"))}%, Redis {Num(T("idle_redis_cpu_percent"))}%)", idle < 5);
        md.AppendLine();

        md.AppendLine("**TaskManager alone**");
        md.AppendLine();
        md.AppendLine("| `POST /api/tasks`, keep-alive clients | requests/s | p50 (ms) | p99 (ms) |");
        md.AppendLine("|---|---|---|---|");
        foreach (var c in settings.Concurrency)
        {
            md.AppendLine($"| {c} | {Rate(T($"submit_{c}_rps"))} | {Num(T($"submit_{c}_p50_ms"))} | {Num(T($"submit_{c}_p99_ms"))} |");
        }
        md.AppendLine();
        md.AppendLine("| pickup, tasks one at a time to idle workers | submit→start p50 / p95 / p99 (ms) | submit→done p50 / p95 / p99 (ms) |");
        md.AppendLine("|---|---|---|");
        foreach (var (name, label) in new[] { ("pickup_python", "Python worker (server timestamps, whole ms)"), ("pickup_dotnet", ".NET worker (one clock)") })
        {
            md.AppendLine($"| {label} | {Num(T($"{name}_start_p50_ms"))} / {Num(T($"{name}_start_p95_ms"))} / {Num(T($"{name}_start_p99_ms"))} | " +
                $"{Num(T($"{name}_done_p50_ms"))} / {Num(T($"{name}_done_p95_ms"))} / {Num(T($"{name}_done_p99_ms"))} |");
        }
        md.AppendLine();
        md.AppendLine($"| median latency (ms), one client | 100 stored | {settings.FlatLarge:N0} stored |");
        md.AppendLine("|---|---|---|");
        foreach (var op in new[] { "submit", "get", "list", "stats" })
        {
            md.AppendLine($"| {op} | {Num(T($"flat_{op}_small_ms"))} | {Num(T($"flat_{op}_large_ms"))} |");
        }
        md.AppendLine();
        md.AppendLine($"Idle fleet: {settings.IdleWorkers:N0} workers long-polling (a lease and a heartbeat each): API {Num(T("idle_api_cpu_percent"))}% " +
            $"and Redis {Num(T("idle_redis_cpu_percent"))}% of one core; a task arriving is picked up in {Num(T("idle_pickup_p50_ms"))} ms " +
            $"(p50), {Num(T("idle_pickup_p99_ms"))} ms (p99).");
        md.AppendLine();

        // The webhooks beside the same run's hot path, measured without them: tasks without a
        // webhook must cost what they did.
        md.AppendLine("**Webhooks**");
        md.AppendLine();
        var scheduler = settings.SchedulerSettings.Count == 0
            ? "the scheduler's webhook settings at their defaults"
            : "the scheduler with " + string.Join(", ", settings.SchedulerSettings.Select(s => $"`{s.Key}={s.Value}`"));
        md.AppendLine($"| {settings.WebhookJobs:N0} no-op tasks, each with a `completed` webhook to a receiver in the bench, drained by the Python workers ({scheduler}) | |");
        md.AppendLine("|---|---|");
        Row(md, "deliveries/s (first received → last)", Rate(T("webhooks_per_s")));
        Row(md, "the same tasks completed/s (first `completed_at` → last); drained/s (first submission → last success)",
            $"{Rate(T("webhooks_completions_per_s"))}; {Rate(T("webhooks_e2e_python_per_s"))}");
        Row(md, "`completed_at` → received, p50 / p99 (ms)", Ms2(T("webhooks_p50_ms"), T("webhooks_p99_ms")));
        Row(md, "of which `completed_at` → the delivery made (its `timestamp`), p50 / p99 (ms)", Ms2(T("webhooks_dispatch_p50_ms"), T("webhooks_dispatch_p99_ms")));
        Row(md, "of which the delivery made → received, p50 / p99 (ms)", Ms2(T("webhooks_send_p50_ms"), T("webhooks_send_p99_ms")));
        Row(md, "last task completed → last delivery received (s)", Num(T("webhooks_tail_s")));
        Row(md, "the scheduler's CPU per delivery (µs; its dispatcher, Hangfire workers and sender); idle (% of a core)",
            $"{Rate(T("webhooks_scheduler_cpu_us"))}; {Num(T("webhooks_scheduler_idle_cpu_percent"))}");
        Row(md, "delivered / duplicates / unexpected", $"{Rate(T("webhooks_delivered"))} / {Rate(T("webhooks_duplicates"))} / {Rate(T("webhooks_strangers"))}");
        Row(md, $"one task at a time ({settings.WebhookSamples}), `completed_at` → received, p50 / p99 (ms)", Ms2(T("webhooks_single_p50_ms"), T("webhooks_single_p99_ms")));
        Row(md, "same run, tasks without webhooks: submit at 64 connections (requests/s; p99 ms)", $"{Rate(T("submit_64_rps"))}; {Num(T("submit_64_p99_ms"))}");
        Row(md, "same run, tasks without webhooks: end to end, Python worker (tasks/s)", Rate(T("e2e_python_per_s")));
        md.AppendLine();

        // Streamed chat completions, against the target: 1,000 streams, 20 chunks a second each, p99 < 250 ms.
        md.AppendLine("**Streams**");
        md.AppendLine();
        md.AppendLine($"| `POST /v1/chat/completions`, `stream: true`, `max_tokens` {settings.StreamTokens}, tokens made at {settings.StreamTokensPerSecond}/s by the in-bench worker " +
            $"(reported as the Python worker does: the first at once, then at most every {settings.StreamReportMs} ms, the reports of all streams group-committed) | " +
            string.Join(" | ", settings.StreamCounts.Select(n => $"{n:N0} streams")) + " |");
        md.AppendLine("|---|" + string.Concat(settings.StreamCounts.Select(_ => "---|")));
        void StreamRow(string label, Func<string, string> cell) =>
            Row(md, label, settings.StreamCounts.Select(n => cell($"streams_{n}")).ToArray());
        StreamRow("chunks relayed/s (steady part; planned)", k => $"{Rate(T(k + "_chunks_per_s"))} ({Rate(double.Parse(k[8..], CultureInfo.InvariantCulture) * settings.StreamTokensPerSecond)})" +
            (T(k + "_steady") == 0 ? ", whole round: no steady part" : ""));
        StreamRow("worker's report → client's receipt, p50 / p99 (ms; one clock)", k => Ms2(T(k + "_p50_ms"), T(k + "_p99_ms")));
        StreamRow("the same, chunks received in the steady part only, p50 / p99 (ms)", k => Ms2(T(k + "_steady_p50_ms"), T(k + "_steady_p99_ms")));
        StreamRow("of which the report sent → the API's answer to it, p50 / p99 (ms)", k => Ms2(T(k + "_answered_p50_ms"), T(k + "_answered_p99_ms")));
        StreamRow("chunks a report (progress reports and results)", k => Num(T(k + "_chunks_per_report")));
        StreamRow("token made → client's receipt, p50 / p99 (ms; the worker's batching included)", k => Ms2(T(k + "_made_p50_ms"), T(k + "_made_p99_ms")));
        StreamRow("request → first chunk, p50 / p99 (ms)", k => Ms2(T(k + "_first_p50_ms"), T(k + "_first_p99_ms")));
        StreamRow("CPU over the steady part, % of a core: API / Redis / bench (clients and worker)",
            k => $"{Num(T(k + "_api_cpu_percent"))} / {Num(T(k + "_redis_cpu_percent"))} / {Num(T(k + "_bench_cpu_percent"))}");
        StreamRow($"streams complete ({settings.StreamTokens} chunks and `[DONE]`); worker reports refused", k => $"{Rate(T(k + "_complete"))}; {Rate(T(k + "_refused_reports"))}");
        var largest = settings.StreamCounts.Max();
        var key = $"streams_{largest}";
        md.AppendLine();
        md.AppendLine("| target | measured | met |");
        md.AppendLine("|---|---|---|");
        Check(md, $"{largest:N0} concurrent streams, {largest * settings.StreamTokensPerSecond:N0} chunks/s (within 5%), p99 < 250 ms, all complete",
            double.IsNaN(T(key + "_complete")) ? "not run"
                : $"{Rate(T(key + "_chunks_per_s"))} chunks/s, p99 {Num(T(key + "_p99_ms"))} ms, {Rate(T(key + "_complete"))} complete",
            T(key + "_chunks_per_s") >= largest * settings.StreamTokensPerSecond * 0.95 && T(key + "_p99_ms") < 250 && T(key + "_complete") >= largest);
        foreach (var failure in failures)
        {
            md.AppendLine();
            md.AppendLine($"**Failed:** {failure}");
        }
        return md.ToString();
    }

    private static void Row(StringBuilder md, string label, params string[] cells) => md.AppendLine($"| {label} | {string.Join(" | ", cells)} |");

    private static void Target(StringBuilder md, string label, double ratio, double needed) =>
        Check(md, label, double.IsNaN(ratio) ? "peer not run" : $"×{ratio:0.00}", ratio >= needed);

    private static void Check(StringBuilder md, string label, string measured, bool met) =>
        md.AppendLine($"| {label} | {measured} | {(met ? "yes" : "**no**")} |");

    private static double Ratio(double ours, double theirs) => ours / theirs;

    private static string Rate(double value) => double.IsNaN(value) ? "—" : value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Num(double value) => double.IsNaN(value) ? "—" : value >= 100 ? value.ToString("N0", CultureInfo.InvariantCulture) : value.ToString("0.##", CultureInfo.InvariantCulture);

    private static string Ms2(double p50, double p99) => double.IsNaN(p50) ? "—" : $"{Num(p50)} / {Num(p99)}";

    private static string Cap(string name) => name switch { "bullmq" => "BullMQ", "celery" => "Celery", "hangfire" => "Hangfire", _ => name };

    private static string Machine()
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        var memory = File.Exists("/proc/meminfo")
            ? long.Parse(File.ReadLines("/proc/meminfo").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024 / 1024
            : 0;
        return $"{Environment.ProcessorCount} cores ({cpu ?? RuntimeInformation.ProcessArchitecture.ToString()}), {memory} GiB, {RuntimeInformation.OSDescription}";
    }
}
