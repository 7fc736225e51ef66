using Microsoft.Extensions.Time.Testing;
using TaskManager.Api.Domain;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Cluster;

/// <summary>
/// A Redis Cluster changes under a running deployment: a resharding moves the deployment's slot,
/// with its keys, to a node that has never seen the script library. The next call finds the new
/// owner, loads the library there, and the tasks carry on where they were.
/// </summary>
[Trait("Category", "Cluster")]
public sealed class ClusterTopologyTests(RedisCluster redis) : IClassFixture<RedisCluster>
{
    private const string Prefix = "{topology}:";
    private readonly FakeTimeProvider clock = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public async Task AfterTheSlotMovesToANodeWithoutTheLibrary_TheNextCallLoadsItThere_AndTheTasksCarryOn()
    {
        await redis.FlushAsync();
        await redis.FlushFunctionsAsync();
        var store = TestStore.Create(redis.Connection, Prefix, clock);
        var worker = await store.Workers.RegisterAsync(new WorkerRegistration("w", ["llm"], "{}"));
        var first = (await store.Queue.SubmitAsync(Request(), null)).Task!;
        var second = (await store.Queue.SubmitAsync(Request(), null)).Task!;
        var before = await redis.OwnerOfAsync(store.Keys.Task(first.Id));
        Assert.Single(await LibrariesAsync(before));

        var after = await redis.MoveSlotOfAsync(store.Keys.Task(first.Id));
        Assert.NotEqual(before.EndPoint, after.EndPoint);
        Assert.Empty(await LibrariesAsync(after));

        var leased = await store.Queue.LeaseAsync(worker, 1);
        Assert.Equal([first.Id], leased.Tasks.Select(t => t.TaskId));
        Assert.Single(await LibrariesAsync(after));
        Assert.True((await store.Queue.CompleteAsync(first.Id, leased.Tasks[0].LeaseToken, """{"text":"done"}""")).Ok);
        Assert.Equal(TaskState.Succeeded, (await store.Inspector.GetAsync(first.Id))!.Status);
        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(second.Id))!.Status);
    }

    private static TaskRequest Request() => new("llm", """{"prompt":"hi"}""", null, 5, 300, 3, null, null);

    /// <summary>The function libraries a node holds.</summary>
    private static async Task<string[]> LibrariesAsync(StackExchange.Redis.IServer node) =>
        ((StackExchange.Redis.RedisResult[])(await node.ExecuteAsync("FUNCTION", "LIST"))!)
            .Select(library => (string)((StackExchange.Redis.RedisResult[])library!)[1]!).ToArray();
}
