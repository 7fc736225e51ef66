using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using TaskManager.Api;
using TaskManager.Api.Domain;
using TaskManager.Api.Storage;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Storage;

/// <summary>The lease script's choice: what a worker can run, and in which order, against a real Redis.</summary>
public abstract class PlacementStoreTests<TRedis>(TRedis redis) : IClassFixture<TRedis>, IAsyncLifetime
    where TRedis : class, ITestRedis
{
    private readonly FakeTimeProvider clock = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));
    private TestStore store = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        store = TestStore.Create(redis.Connection, "{place}:", clock);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Lease_PrefersHigherPriority_ThenTheLoadedModel_ThenTheOldest()
    {
        var worker = await RegisterAsync(models: ["m-loaded"]);
        var oldOther = await SubmitAsync(priority: 5, model: "m-other");
        var oldNone = await SubmitAsync(priority: 5);
        var loaded = await SubmitAsync(priority: 5, model: "m-loaded");
        var urgent = await SubmitAsync(priority: 9, model: "m-other");

        var order = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            order.Add((await store.Queue.LeaseAsync(worker, 1)).Tasks.Single().TaskId);
        }

        // Priority 9 first, though its model is not loaded; then, at priority 5, the tasks that need
        // no model load (no model, or the loaded one) by age; the other model's task last.
        Assert.Equal([urgent.Id, oldNone.Id, loaded.Id, oldOther.Id], order);
    }

    [Fact]
    public async Task Lease_SkipsTasksNeedingMoreGpuMemory_OrAnotherGpu_AndTakesOneThatFits()
    {
        var worker = await RegisterAsync(gpus: [("NVIDIA L4", 24_000)]);
        var tooBig = await SubmitAsync(requirements: new TaskRequirements(40_000, null));
        var wrongGpu = await SubmitAsync(requirements: new TaskRequirements(null, "H100"));
        var fits = await SubmitAsync(requirements: new TaskRequirements(16_000, "l4"));

        var leased = await store.Queue.LeaseAsync(worker, 3);

        Assert.Equal([fits.Id], leased.Tasks.Select(t => t.TaskId));
        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(tooBig.Id))!.Status);
        Assert.Contains("40000 MB", (await store.Inspector.GetAsync(tooBig.Id))!.WaitingReason);
        Assert.Contains("H100", (await store.Inspector.GetAsync(wrongGpu.Id))!.WaitingReason);
    }

    [Fact]
    public async Task Lease_LooksPastTasksThatDoNotFit_AsFarAsTheScanDepth()
    {
        // The lease reads the queue a page at a time: a fitting task 20 places back is still found,
        // and one past LeaseScanDepth is not (the lease costs the same however long the queue).
        var worker = await RegisterAsync(gpus: [("NVIDIA L4", 24_000)]);
        for (var i = 0; i < 20; i++)
        {
            await SubmitAsync(requirements: new TaskRequirements(40_000, null));
        }
        var fits = await SubmitAsync();
        var shallow = TestStore.Create(redis.Connection, "{place}:", clock, new TaskManagerOptions { LeaseScanDepth = 16 });

        Assert.Empty((await shallow.Queue.LeaseAsync(worker, 1)).Tasks);
        var leased = await store.Queue.LeaseAsync(worker, 1);

        Assert.Equal([fits.Id], leased.Tasks.Select(t => t.TaskId));
        Assert.True(leased.MoreQueued); // the 20 left may fit another worker: the wake-up is passed on
    }

    [Fact]
    public async Task Lease_OfExactlyWhatIsQueued_SaysNothingMoreIsQueued()
    {
        var worker = await RegisterAsync();
        var tasks = new[] { await SubmitAsync(), await SubmitAsync(), await SubmitAsync() };

        var leased = await store.Queue.LeaseAsync(worker, 3);

        Assert.Equal(tasks.Select(t => t.Id), leased.Tasks.Select(t => t.TaskId));
        Assert.False(leased.MoreQueued);
    }

    [Fact]
    public async Task Lease_LeavesATaskForAnIdleWorkerThatHasItsModel_AndSaysSo()
    {
        var without = await RegisterAsync();
        await RegisterAsync(models: ["llama"]);
        var task = await SubmitAsync(model: "llama");

        var result = await store.Queue.LeaseAsync(without, 1);

        Assert.Empty(result.Tasks);
        Assert.Equal([("llm", "llama")], result.LeftForOthers);
        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(task.Id))!.Status);
    }

    [Fact]
    public async Task Lease_TakesAModelTaskWhenTheWorkerThatHasTheModelIsBusy()
    {
        var without = await RegisterAsync();
        var busy = await RegisterAsync(models: ["llama"]);
        await SubmitAsync();
        await SubmitAsync();
        // Both of its two slots are taken.
        Assert.Equal(2, (await store.Queue.LeaseAsync(busy, 2)).Tasks.Count);
        var task = await SubmitAsync(model: "llama");

        Assert.Equal([task.Id], (await store.Queue.LeaseAsync(without, 1)).Tasks.Select(t => t.TaskId));
    }

    [Fact]
    public async Task DrainedWorker_LeasesNothing_AndItsHeartbeatSaysDrain()
    {
        var worker = await RegisterAsync();
        await SubmitAsync();

        Assert.True(await store.Workers.DrainAsync(worker));

        Assert.Empty((await store.Queue.LeaseAsync(worker, 1)).Tasks);
        Assert.True((await store.Workers.HeartbeatAsync(worker, new WorkerState("{}", 0, [], []), []))!.Drain);
        Assert.False(await store.Workers.DrainAsync("w_" + Guid.NewGuid().ToString("N")));
    }

    [Fact]
    public async Task WorkerCounts_FollowItsAttempts()
    {
        var worker = await RegisterAsync();
        var ok = await SubmitAsync();
        var bad = await SubmitAsync(maxAttempts: 1);
        var leased = (await store.Queue.LeaseAsync(worker, 2)).Tasks.ToDictionary(t => t.TaskId, t => t.LeaseToken);
        Assert.Equal(2, (await store.Workers.ListWorkersAsync(10)).Single().Running);

        await store.Queue.CompleteAsync(ok.Id, leased[ok.Id], "{}");
        await store.Queue.FailAsync(bad.Id, leased[bad.Id], """{"code":"x","message":"y"}""", retryable: false, FailureKind.Error);

        var stats = (await store.Workers.ListWorkersAsync(10)).Single();
        Assert.Equal((0, 1L, 1L), (stats.Running, stats.Completed, stats.Failed));
    }

    [Fact]
    public async Task ALeaseOfSeveral_ReadsOnFromWhereItWas_AfterTakingTasksOutOfTheQueue()
    {
        // Tasks that fit and tasks that do not (more GPU memory than the worker has) take turns, so
        // that a hand of three reads past its first page after taking two from it.
        var worker = await RegisterAsync();
        var fits = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            fits.Add((await SubmitAsync()).Id);
            await SubmitAsync(requirements: new TaskRequirements(40_000, null));
        }

        var leased = await store.Queue.LeaseAsync(worker, 3);

        Assert.Equal(fits[..3], leased.Tasks.Select(t => t.TaskId));
        Assert.True(leased.MoreQueued);
    }

    [Fact]
    public async Task QueueEntriesOfTasksThatAreGone_AreDropped_AndTheLeaseTakesTheTaskBehindThem()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        // Entries ahead of it whose tasks no longer exist (as a lost write could leave them).
        var gone = new[] { TaskIds.New(clock.GetUtcNow()), TaskIds.New(clock.GetUtcNow()) };
        foreach (var id in gone)
        {
            await redis.Db.SortedSetAddAsync(store.Keys.Queue(TaskTypes.Llm), id, 0);
        }

        var leased = await store.Queue.LeaseAsync(worker, 1);

        Assert.Equal([task.Id], leased.Tasks.Select(t => t.TaskId));
        Assert.Equal(0, await redis.Db.SortedSetLengthAsync(store.Keys.Queue(TaskTypes.Llm)));
    }

    private Task<string> RegisterAsync(string[]? models = null, (string Name, long Free)[]? gpus = null)
    {
        var state = new WorkerState("{}", gpus?.Max(g => g.Free) ?? 0, gpus?.Select(g => g.Name).ToArray() ?? [], models ?? []);
        return store.Workers.RegisterAsync(new WorkerRegistration("w", [TaskTypes.Llm], "{}", Capacity: 2, State: state));
    }

    private async Task<TaskRecord> SubmitAsync(int priority = 5, string? model = null, TaskRequirements? requirements = null, int maxAttempts = 3)
    {
        clock.Advance(TimeSpan.FromMilliseconds(1));
        return (await store.Queue.SubmitAsync(new TaskRequest(TaskTypes.Llm, """{"prompt":"x"}""", model, priority, 300, maxAttempts, null, null, requirements), null)).Task!;
    }
}

/// <summary>The tests above on one Redis.</summary>
[Trait("Category", "Storage")]
public sealed class PlacementStoreOnOneRedis(RedisServer redis) : PlacementStoreTests<RedisServer>(redis);
