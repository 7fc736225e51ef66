using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Reliability;

/// <summary>
/// A small deployment of real processes: redis-server (AOF), the API, the scheduler and Python
/// workers, tuned for quick failure handling (short lease TTL and cancel grace).
/// </summary>
public sealed class FleetFixture : IAsyncLifetime
{
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
    };

    public RedisServer Redis { get; } = new();

    public ApiProcess Api { get; private set; } = null!;

    public ApiProcess Scheduler { get; private set; } = null!;

    public List<WorkerProcess> Workers { get; } = [];

    public HttpClient Client => Api.Client;

    public async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Api = await ApiProcess.StartAsync(Redis, environment: ServerSettings);
        Scheduler = await ApiProcess.StartAsync(Redis, role: "scheduler", environment: ServerSettings);
    }

    public WorkerProcess StartWorker(string name, int capacity = 1)
    {
        var worker = WorkerProcess.Start(Api.BaseAddress, new Dictionary<string, string>
        {
            ["TASKMANAGER_WORKER_NAME"] = name,
            ["TASKMANAGER_CAPACITY"] = capacity.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["TASKMANAGER_CANCEL_GRACE_SECONDS"] = CancelGraceSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        Workers.Add(worker);
        return worker;
    }

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

    public async Task DisposeAsync()
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
