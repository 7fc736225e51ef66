using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TaskManager.Api;
using TaskManager.Api.Domain;
using TaskManager.Api.Observability;
using TaskManager.Api.Storage;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Storage;

/// <summary>
/// The fleet gauges (queue depth, live workers) against a real Redis: read only while an exporter
/// collects them, and current soon after the first collection.
/// </summary>
public abstract class FleetGaugesTests<TRedis>(TRedis redis) : IClassFixture<TRedis>, IAsyncLifetime
    where TRedis : class, ITestRedis
{
    private TestStore store = null!;
    private ServiceProvider services = null!;
    private FleetGauges gauges = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        store = TestStore.Create(redis.Connection, "{gauges}:", TimeProvider.System);
        services = new ServiceCollection()
            .AddSingleton<ITaskInspector>(store.Inspector)
            .AddSingleton<IWorkerRegistry>(store.Workers)
            .AddSingleton<IStoreHealth>(new RedisHealth(redis.Connection, store.Keys))
            .AddSingleton(Options.Create(new TaskManagerOptions()))
            .BuildServiceProvider();
        gauges = new FleetGauges(services, TimeProvider.System, NullLogger<FleetGauges>.Instance);
        await gauges.StartAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await gauges.StopAsync(CancellationToken.None);
        gauges.Dispose();
        await services.DisposeAsync();
    }

    [Fact]
    public async Task Gauges_AreEmptyUntilCollected_ThenReportTheQueueAndTheFleet()
    {
        await store.Workers.RegisterAsync(new WorkerRegistration("w", [TaskTypes.Tts], "{}"));
        for (var i = 0; i < 3; i++)
        {
            await store.Queue.SubmitAsync(new TaskRequest(TaskTypes.Llm, """{"prompt":"x"}""", null, 5, 300, 3, null, null, null), null);
        }

        // Nothing is read before a collection asks (the first answer is what was last read: nothing).
        Assert.Empty(gauges.QueueDepths());
        // The collection woke the refresh: a later one sees the queue and the worker.
        var llm = await Wait.ForAsync(
            () => Task.FromResult(gauges.QueueDepths().Where(m => Equals(m.Tags[0].Value, TaskTypes.Llm)).Select(m => m.Value).FirstOrDefault()),
            depth => depth == 3, TimeSpan.FromSeconds(10), "the llm queue depth gauge to read 3");
        Assert.Equal(3, llm);
        var healthy = await Wait.ForAsync(
            () => Task.FromResult(gauges.LiveWorkers().Where(m => Equals(m.Tags[0].Value, "healthy")).Select(m => m.Value).FirstOrDefault()),
            n => n == 1, TimeSpan.FromSeconds(10), "the healthy workers gauge to read 1");
        Assert.Equal(1, healthy);
    }
}

/// <summary>The tests above on one Redis.</summary>
[Trait("Category", "Storage")]
public sealed class FleetGaugesOnOneRedis(RedisServer redis) : FleetGaugesTests<RedisServer>(redis);
