using Microsoft.Extensions.Time.Testing;
using TaskManager.Api.Domain;
using TaskManager.Api.Coordination;

namespace TaskManager.Tests.Unit;

/// <summary>
/// The API's cache of what each worker serves: a worker that stopped leasing is forgotten once the
/// cache has grown, so worker restarts (each a new id) do not grow it without end.
/// </summary>
[Trait("Category", "Unit")]
public sealed class WorkerCapabilitiesCacheTests
{
    private readonly FakeTimeProvider clock = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public void AWorkerThatStoppedLeasing_IsForgotten_AndOneThatLeasesIsKept()
    {
        var cache = new WorkerCapabilitiesCache(clock);
        cache.Set("gone", ["tts"], ["voice-a"]);
        cache.Set("live", ["llm"], ["tiny-llama"]);
        clock.Advance(WorkerCapabilitiesCache.Forget - TimeSpan.FromMinutes(1));
        cache.Set("live", ["llm"], ["tiny-llama"]); // its long poll ended and it leased again
        clock.Advance(TimeSpan.FromMinutes(2));

        // Restarted workers register under new ids until the cache looks for old entries.
        for (var i = 0; i < WorkerCapabilitiesCache.MinSweepSize; i++)
        {
            cache.Set($"new-{i}", ["llm"], []);
        }

        Assert.Equal((TaskTypes.All, 0), (cache.Get("gone").Types, cache.Get("gone").Models.Count));
        Assert.Equal(["llm"], cache.Get("live").Types);
        Assert.Equal(["tiny-llama"], cache.Get("live").Models);
        Assert.Equal(["llm"], cache.Get("new-0").Types);
    }

    [Fact]
    public void AnEntryIsKept_WhileItsWorkerLeasesWithinTheTime_HoweverLargeTheCacheGrows()
    {
        var cache = new WorkerCapabilitiesCache(clock);
        cache.Set("w", ["sd"], []);
        for (var i = 0; i < 3 * WorkerCapabilitiesCache.MinSweepSize; i++)
        {
            cache.Set($"other-{i}", ["llm"], []);
        }

        Assert.Equal(["sd"], cache.Get("w").Types);
    }
}
