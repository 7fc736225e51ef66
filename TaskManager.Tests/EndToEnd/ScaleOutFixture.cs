using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Hangfire.Redis.StackExchange;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.EndToEnd;

/// <summary>
/// The AppHost scaled out: <c>TaskManager:ApiReplicas=2</c> and <c>TaskManager:SchedulerReplicas=2</c>,
/// without containers, tuned for quick failure handling. The AppHost's own worker resource is left
/// out: the tests start Python workers themselves, each pointed at one API replica's own address.
/// </summary>
public sealed partial class ScaleOutFixture : IAsyncLifetime
{
    public const int Replicas = 2;

    /// <summary>The long poll a worker holds on its replica; a task that waited for it to end would wait this long.</summary>
    public const int LongPollSeconds = 60;

    /// <summary>Settings of every api and scheduler replica, as environment variables (see README, Settings).</summary>
    public static readonly Dictionary<string, string> ServerSettings = new()
    {
        ["TaskManager__LeaseTtlSeconds"] = "5",
        ["TaskManager__HeartbeatIntervalSeconds"] = "1",
        ["TaskManager__MaxLeaseWaitSeconds"] = LongPollSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["TaskManager__RetryBaseSeconds"] = "1",
        ["TaskManager__SweepIntervalMs"] = "250",
        // The tests poll every 20 ms; only the tests about rate limits should meet them.
        ["TaskManager__RateLimitPerSecond"] = "100000",
        ["TaskManager__RateLimitBurst"] = "100000",
    };

    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(4);
    private string? dataDirectory;
    private ConnectionMultiplexer? redis;

    public DistributedApplication App { get; private set; } = null!;

    /// <summary>The api replicas, in the order Aspire named them.</summary>
    public IReadOnlyList<Replica> Api { get; private set; } = [];

    /// <summary>The scheduler replicas, in the order Aspire named them.</summary>
    public IReadOnlyList<Replica> Schedulers { get; private set; } = [];

    /// <summary>Hangfire's own view of the shared storage (servers, jobs).</summary>
    public RedisStorage HangfireStorage { get; private set; } = null!;

    public List<WorkerProcess> Workers { get; } = [];

    public async Task InitializeAsync()
    {
        dataDirectory = Directory.CreateTempSubdirectory("taskmanager-scaleout-").FullName;
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.TaskManager_AppHost>(
        [
            "TaskManager:Containers=false",
            $"TaskManager:RedisDataDirectory={dataDirectory}",
            $"TaskManager:ApiReplicas={Replicas}",
            $"TaskManager:SchedulerReplicas={Replicas}",
            $"Parameters:api-key={Credentials.ClientKey}",
            $"Parameters:admin-key={Credentials.AdminKey}",
            $"Parameters:worker-token={Credentials.WorkerToken}",
        ]);
        // The AppHost's worker would take tasks through the load-balancing proxy; these tests
        // decide which replica each worker talks to.
        builder.Resources.Remove(builder.Resources.Single(r => r.Name == "worker"));
        // The server settings go to every replica of both projects, as the AppHost's own
        // WithEnvironment calls do.
        foreach (var role in (string[])["api", "scheduler"])
        {
            var project = builder.CreateResourceBuilder<ProjectResource>(role);
            foreach (var (name, value) in ServerSettings)
            {
                project.WithEnvironment(name, value);
            }
        }
        App = await builder.BuildAsync();
        using var start = new CancellationTokenSource(StartTimeout);
        await App.StartAsync(start.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("redis", start.Token);
        Api = await RunningReplicasAsync("api", start.Token);
        Schedulers = await RunningReplicasAsync("scheduler", start.Token);
        // Aspire's health check of a resource with replicas goes through its proxy, so "healthy"
        // says that one replica answers: ask each one itself.
        foreach (var replica in Api.Concat(Schedulers))
        {
            using var client = new HttpClient { BaseAddress = replica.BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
            await Wait.UntilAsync(async () =>
            {
                try
                {
                    return (await client.GetAsync("/health", start.Token)).IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, StartTimeout, $"{replica.Id} to answer /health at {replica.BaseAddress}");
        }

        redis = await ConnectionMultiplexer.ConnectAsync(await App.GetConnectionStringAsync("redis", start.Token)
            ?? throw new InvalidOperationException("The redis resource has no connection string."));
        HangfireStorage = new RedisStorage(redis, new RedisStorageOptions { Prefix = "{tm-hangfire}:" });
    }

    /// <summary>A client of one API replica's own address that presents each call's party's key.</summary>
    public static HttpClient ClientOf(Replica replica) =>
        new(new PartyKeyHandler(new HttpClientHandler())) { BaseAddress = replica.BaseAddress, Timeout = TimeSpan.FromSeconds(90) };

    /// <summary>A sim worker that talks to <paramref name="api"/> only; it logs each task it starts (debug level).</summary>
    public WorkerProcess StartWorker(string name, Replica api, string types, int capacity = 1)
    {
        var worker = WorkerProcess.Start(api.BaseAddress, new Dictionary<string, string>
        {
            ["TASKMANAGER_WORKER_NAME"] = name,
            ["TASKMANAGER_TASK_TYPES"] = types,
            ["TASKMANAGER_CAPACITY"] = capacity.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["TASKMANAGER_CANCEL_GRACE_SECONDS"] = "1",
            ["TASKMANAGER_LOG_LEVEL"] = "debug",
        });
        Workers.Add(worker);
        return worker;
    }

    /// <summary>Waits until the worker says it is ready: its lease loop (the long poll) starts right after.</summary>
    public static Task WaitReadyAsync(WorkerProcess worker) =>
        Wait.UntilAsync(() => worker.Output.Contains("\"worker ready\"", StringComparison.Ordinal), TimeSpan.FromSeconds(60),
            "the worker to be ready");

    /// <summary>Kills the workers started so far (a test leaves none behind for the next).</summary>
    public async Task StopWorkersAsync()
    {
        foreach (var worker in Workers)
        {
            await worker.DisposeAsync();
        }
        Workers.Clear();
    }

    /// <summary>Waits until a worker of this name is registered and healthy, as <paramref name="client"/>'s replica lists it; returns its id.</summary>
    public static async Task<string> WorkerIdAsync(HttpClient client, string name)
    {
        var entry = await Wait.ForAsync(
            async () => (await (await client.GetAsync("/api/tasks/workers/health")).JsonAsync()).GetProperty("workers")
                .EnumerateArray().FirstOrDefault(w => w.GetProperty("name").GetString() == name && w.GetProperty("status").GetString() == "healthy"),
            w => w.ValueKind == JsonValueKind.Object, TimeSpan.FromSeconds(60), $"worker {name} to register");
        return entry.GetProperty("id").GetString()!;
    }

    /// <summary>Everything a replica has printed so far (its console log, as the dashboard shows it).</summary>
    public async Task<IReadOnlyList<string>> LogAsync(Replica replica)
    {
        var lines = new List<string>();
        await foreach (var batch in App.Services.GetRequiredService<ResourceLoggerService>().GetAllAsync(replica.Id))
        {
            lines.AddRange(batch.Select(l => l.Content));
        }
        return lines;
    }

    /// <summary>
    /// Each scheduler replica's process, as the Hangfire servers on the shared storage name them
    /// (<c>taskmanager-scheduler:{machine}:{pid}:...</c>): waits until there is one per replica.
    /// Aspire reports the process it started for a replica; the application is that process or
    /// one of its descendants (<c>dotnet run</c> starts it), so each server is matched to its
    /// replica through its parent processes.
    /// </summary>
    public async Task<IReadOnlyDictionary<Replica, int>> SchedulerProcessesAsync()
    {
        IReadOnlyDictionary<Replica, int> found = new Dictionary<Replica, int>();
        await Wait.UntilAsync(() =>
        {
            var servers = HangfireStorage.GetMonitoringApi().Servers()
                .Select(s => HangfireServerName().Match(s.Name))
                .Where(m => m.Success)
                .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
                .Where(pid => Directory.Exists($"/proc/{pid}"))
                .ToHashSet();
            found = Schedulers
                .Select(r => (Replica: r, Pid: servers.Where(pid => AncestorsOf(pid).Contains(AspirePidOf(r))).ToArray()))
                .Where(m => m.Pid.Length == 1)
                .ToDictionary(m => m.Replica, m => m.Pid[0]);
            return found.Count == Schedulers.Count && found.Values.Distinct().Count() == Schedulers.Count;
        }, TimeSpan.FromSeconds(60), "a live Hangfire server of each scheduler replica");
        return found;
    }

    /// <summary>The process id Aspire reports for a replica.</summary>
    private int AspirePidOf(Replica replica) =>
        App.ResourceNotifications.TryGetCurrentState(replica.Id, out var resource)
        && resource.Snapshot.Properties.FirstOrDefault(p => p.Name == "executable.pid")?.Value is { } pid
            ? Convert.ToInt32(pid, System.Globalization.CultureInfo.InvariantCulture)
            : -1;

    /// <summary>The process and its parents, up to init.</summary>
    private static List<int> AncestorsOf(int pid)
    {
        var chain = new List<int>();
        while (pid > 1 && chain.Count < 64)
        {
            chain.Add(pid);
            try
            {
                // "pid (comm) state ppid ...": the command may hold spaces and parentheses.
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                pid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                break;
            }
        }
        return chain;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^taskmanager-scheduler:[^:]*:(\d+):")]
    private static partial System.Text.RegularExpressions.Regex HangfireServerName();

    /// <summary>
    /// Waits until <paramref name="resource"/> has <see cref="Replicas"/> instances running, each
    /// with its own address. Every replica is an instance of the resource with its own id
    /// (<c>api-abcdwxyz</c>); the URLs of its snapshot are the resource's, i.e. its proxy's, so each
    /// replica's own address is read from the ASPNETCORE_URLS that Aspire gave that process.
    /// </summary>
    private async Task<IReadOnlyList<Replica>> RunningReplicasAsync(string resource, CancellationToken cancellationToken)
    {
        var running = new Dictionary<string, Replica>();
        await foreach (var e in App.ResourceNotifications.WatchAsync(cancellationToken))
        {
            if (e.Resource.Name != resource || e.Snapshot.State?.Text != KnownResourceStates.Running)
            {
                continue;
            }
            var urls = e.Snapshot.EnvironmentVariables.FirstOrDefault(v => v.Name == "ASPNETCORE_URLS")?.Value;
            var http = urls?.Split(';').FirstOrDefault(u => u.StartsWith("http://", StringComparison.Ordinal));
            if (http is not null && Uri.TryCreate(http, UriKind.Absolute, out var address) && address.Port > 0)
            {
                running[e.ResourceId] = new Replica(e.ResourceId, address);
            }
            if (running.Count == Replicas)
            {
                return [.. running.Values.OrderBy(r => r.Id, StringComparer.Ordinal)];
            }
        }
        throw new OperationCanceledException($"Fewer than {Replicas} replicas of '{resource}' came up.");
    }

    public async Task DisposeAsync()
    {
        await StopWorkersAsync();
        redis?.Dispose();
        if (App is not null)
        {
            await App.DisposeAsync();
        }
        TempFolder.Delete(dataDirectory);
    }
}

/// <summary>One process of a resource with replicas: its Aspire resource id and its own address.</summary>
public sealed record Replica(string Id, Uri BaseAddress);
