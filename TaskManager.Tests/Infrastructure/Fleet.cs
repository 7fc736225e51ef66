using System.Text.Json;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A small deployment of real processes: Redis (<typeparamref name="TRedis"/>: one redis-server or
/// a cluster, with AOF), the API, the scheduler and Python workers, tuned for quick failure
/// handling (short lease TTL and cancel grace).
/// </summary>
public abstract class Fleet<TRedis> : IAsyncLifetime
    where TRedis : ITestRedis, new()
{
    /// <summary>How long a worker lets a task stop by itself before it kills the task's process.</summary>
    public const int CancelGraceSeconds = 1;

    public static readonly Dictionary<string, string> ServerSettings = new()
    {
        ["TaskManager__LeaseTtlSeconds"] = "3",
        ["TaskManager__HeartbeatIntervalSeconds"] = "1",
        ["TaskManager__MaxLeaseWaitSeconds"] = "5",
        // Gaps of about 1 s then 3 s: far enough apart to tell that they grow.
        ["TaskManager__RetryBaseSeconds"] = "1",
        ["TaskManager__RetryFactor"] = "3",
        ["TaskManager__SweepIntervalMs"] = "250",
        ["TaskManager__WorkerStaleSeconds"] = "2",
        ["TaskManager__WorkerDeadSeconds"] = "4",
    };

    /// <summary>The API's and the scheduler's settings: <see cref="ServerSettings"/>, and what a fleet of a kind adds.</summary>
    protected virtual IDictionary<string, string> Settings => ServerSettings;

    public TRedis Redis { get; } = new();

    public ApiProcess Api { get; private set; } = null!;

    public ApiProcess Scheduler { get; private set; } = null!;

    public List<WorkerProcess> Workers { get; } = [];

    public HttpClient Client => Api.Client;

    public virtual async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Api = await ApiProcess.StartAsync(Redis, environment: Settings);
        Scheduler = await ApiProcess.StartAsync(Redis, role: "scheduler", environment: Settings);
    }

    public WorkerProcess StartWorker(string name, int capacity = 1, IDictionary<string, string>? environment = null,
        string interpreter = "python3")
    {
        var settings = new Dictionary<string, string>
        {
            ["TASKMANAGER_WORKER_NAME"] = name,
            ["TASKMANAGER_CAPACITY"] = capacity.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["TASKMANAGER_CANCEL_GRACE_SECONDS"] = CancelGraceSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }
        var worker = WorkerProcess.Start(Api.BaseAddress, settings, interpreter);
        Workers.Add(worker);
        return worker;
    }

    /// <summary>Waits until a worker of this name is registered and healthy; returns its id.</summary>
    public async Task<string> WorkerIdAsync(string name)
    {
        var entry = await Wait.ForAsync(
            async () => (await (await Client.GetAsync("/api/tasks/workers/health")).JsonAsync()).GetProperty("workers")
                .EnumerateArray().FirstOrDefault(w => w.GetProperty("name").GetString() == name && w.GetProperty("status").GetString() == "healthy"),
            w => w.ValueKind == JsonValueKind.Object, TimeSpan.FromSeconds(30), $"worker {name} to register");
        return entry.GetProperty("id").GetString()!;
    }

    /// <summary>A worker's entry in /api/tasks/workers/health, or an undefined element when it is not listed.</summary>
    public async Task<JsonElement> WorkerHealthAsync(string id) =>
        (await (await Client.GetAsync("/api/tasks/workers/health")).JsonAsync()).GetProperty("workers")
            .EnumerateArray().FirstOrDefault(w => w.GetProperty("id").GetString() == id);

    public async Task<JsonElement> GetTaskAsync(string id) => await (await Client.GetAsync($"/api/tasks/{id}")).JsonAsync();

    public async Task<string> SubmitAsync(string json)
    {
        var response = await Client.PostJsonAsync("/api/tasks", json);
        var body = await response.JsonAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Accepted, body.ToString());
        return body.GetProperty("id").GetString()!;
    }

    public async Task<JsonElement> WaitForStatusAsync(string id, Func<string, bool> done, TimeSpan timeout) =>
        await Wait.ForAsync(() => GetTaskAsync(id), t => done(t.GetProperty("status").GetString()!), timeout,
            $"task {id} to reach the expected status");

    public virtual async Task DisposeAsync()
    {
        foreach (var worker in Workers)
        {
            await worker.DisposeAsync();
        }
        if (Scheduler is not null)
        {
            await Scheduler.DisposeAsync();
        }
        if (Api is not null)
        {
            await Api.DisposeAsync();
        }
        await Redis.DisposeAsync();
    }
}

/// <summary>The fleet on one redis-server.</summary>
public sealed class FleetFixture : Fleet<RedisServer>;

/// <summary>The fleet on a Redis Cluster of three primaries.</summary>
public sealed class ClusterFleetFixture : Fleet<RedisCluster>;
