using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace TaskManager.Bench;

/// <summary>
/// TaskManager as a deployment runs it: the API and the scheduler (the same Release build in its
/// two roles) on one Redis, with generated keys. The settings differ from the defaults in two
/// ways only, both because a benchmark is one tenant doing the work of many: the per-key rate
/// limit and the tenant's cap of queued tasks are raised. The scheduler, which sends the webhooks,
/// may also reach private targets: the webhooks scenario's receiver is on loopback.
/// </summary>
public sealed class Deployment : IAsyncDisposable
{
    public const string KeyPrefix = "{tm}:";

    private readonly List<Child> workers = [];

    private readonly IReadOnlyDictionary<string, string> schedulerSettings;

    private Deployment(Redis redis, string root, string logs, IReadOnlyDictionary<string, string> schedulerSettings)
    {
        Redis = redis;
        Root = root;
        Logs = logs;
        this.schedulerSettings = schedulerSettings;
    }

    public Redis Redis { get; }

    public string Root { get; }

    public string Logs { get; }

    public Child Api { get; private set; } = null!;

    public Child Scheduler { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    public string ClientKey { get; } = "bench-client-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    public string WorkerToken { get; } = "bench-worker-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>The admin key (the Hangfire dashboard at /hangfire, the admin endpoints).</summary>
    public string AdminKey { get; } = "bench-admin-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <param name="schedulerSettings">More settings for the scheduler only (e.g. <c>TaskManager__Webhooks__Concurrency</c>).</param>
    public static async Task<Deployment> StartAsync(Redis redis, string root, string logs, IReadOnlyDictionary<string, string>? schedulerSettings = null)
    {
        var deployment = new Deployment(redis, root, logs, schedulerSettings ?? new Dictionary<string, string>());
        var port = Child.FreePort();
        deployment.BaseAddress = new Uri($"http://127.0.0.1:{port}");
        deployment.Api = deployment.StartService("api", port);
        deployment.Scheduler = deployment.StartService("scheduler", Child.FreePort());
        using var client = deployment.NewClient(1, deployment.ClientKey);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                if ((await client.GetAsync("/api/health")).StatusCode == HttpStatusCode.OK)
                {
                    return deployment;
                }
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
            }
            if (deployment.Api.Exited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"The API did not start; see {logs}/api.log.");
            }
            await Task.Delay(100);
        }
    }

    private Child StartService(string role, int port)
    {
        var dll = Path.Combine(Root, "TaskManager.Api", "bin", "Release", "net10.0", "TaskManager.Api.dll");
        var environment = new Dictionary<string, string>
        {
            ["ConnectionStrings__redis"] = Redis.ConnectionString.Replace(",allowAdmin=true", "", StringComparison.Ordinal),
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
            ["TaskManager__Role"] = role,
            ["TaskManager__ApiKeys__0__Key"] = ClientKey,
            ["TaskManager__ApiKeys__0__Tenant"] = "bench",
            ["TaskManager__WorkerTokens__0"] = WorkerToken,
            ["TaskManager__AdminKeys__0"] = AdminKey,
            ["TaskManager__RateLimitPerSecond"] = "1000000",
            ["TaskManager__RateLimitBurst"] = "1000000",
            ["TaskManager__TenantQueueCap"] = "100000000",
        };
        if (role == "scheduler")
        {
            // The webhooks scenario's receiver listens on 127.0.0.1, which the sender refuses by default.
            environment["TaskManager__Webhooks__AllowPrivateTargets"] = "true";
            foreach (var (name, value) in schedulerSettings)
            {
                environment[name] = value;
            }
        }
        return Child.Start("dotnet", [dll], Path.Combine(Logs, role + ".log"), environment, Root);
    }

    /// <summary>An HTTP client with its own pool of keep-alive connections.</summary>
    public HttpClient NewClient(int connections, string key)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            UseProxy = false,
        };
        var client = new HttpClient(handler) { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(100) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    /// <summary>Starts Python workers (the real worker, on its <c>sim</c> backend) and waits until all are registered.</summary>
    public async Task StartPythonWorkersAsync(int count, int capacity)
    {
        var before = await LiveWorkersAsync();
        for (var i = 0; i < count; i++)
        {
            workers.Add(Child.Start("python3", ["-m", "taskmanager_worker"], Path.Combine(Logs, $"worker-{workers.Count}.log"),
                new Dictionary<string, string>
                {
                    ["TASKMANAGER_API_URL"] = BaseAddress.ToString().TrimEnd('/'),
                    ["TASKMANAGER_WORKER_TOKEN"] = WorkerToken,
                    ["TASKMANAGER_BACKEND"] = "sim",
                    ["TASKMANAGER_TASK_TYPES"] = "llm",
                    ["TASKMANAGER_CAPACITY"] = capacity.ToString(CultureInfo.InvariantCulture),
                    ["TASKMANAGER_WORKER_NAME"] = $"bench-python-{workers.Count}",
                    ["TASKMANAGER_LOG_LEVEL"] = "warning",
                    ["PYTHONUNBUFFERED"] = "1",
                }, Path.Combine(Root, "worker")));
        }
        await WaitForWorkersAsync(before + count, $"The Python workers did not register; see {Logs}/worker-*.log.");
    }

    public async Task StopPythonWorkersAsync()
    {
        foreach (var worker in workers)
        {
            await worker.DisposeAsync();
        }
        workers.Clear();
    }

    /// <summary>Waits, a minute at most, until at least <paramref name="count"/> workers are healthy.</summary>
    public async Task WaitForWorkersAsync(int count, string failure)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (await LiveWorkersAsync() < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException(failure);
            }
            await Task.Delay(50);
        }
    }

    private async Task<int> LiveWorkersAsync()
    {
        using var client = NewClient(1, ClientKey);
        var health = JsonDocument.Parse(await client.GetStringAsync("/api/tasks/workers/health")).RootElement;
        return health.GetProperty("workers").EnumerateArray().Count(w => w.GetProperty("status").GetString() == "healthy");
    }

    /// <summary>
    /// Deletes every TaskManager key (tasks, queues, workers, statistics; Hangfire's stay), then has
    /// Redis rewrite its append-only file and waits for it: a rewrite that Redis starts by itself
    /// when the file has grown (a fork copying everything) would otherwise land in the middle of the
    /// next measurement.
    /// </summary>
    public async Task ResetAsync()
    {
        await Redis.DeletePrefixAsync(KeyPrefix);
        await Redis.RewriteAppendOnlyFileAsync();
    }

    /// <summary>How many tasks of a type have succeeded, from the statistics hash (one HGET).</summary>
    public async Task<long> SucceededAsync(string type) =>
        (long?)await Redis.Connection.GetDatabase().HashGetAsync(KeyPrefix + "stats:totals", type + ":succeeded") ?? 0;

    public async ValueTask DisposeAsync()
    {
        await StopPythonWorkersAsync();
        await Scheduler.DisposeAsync();
        await Api.DisposeAsync();
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");
}
