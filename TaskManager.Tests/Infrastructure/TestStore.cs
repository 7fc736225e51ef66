using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TaskManager.Api;
using TaskManager.Api.Storage;

namespace TaskManager.Tests.Infrastructure;

/// <summary>The Redis storage's parts, wired as the service wires them, for tests that call the store directly.</summary>
public sealed record TestStore(RedisKeys Keys, RedisTaskQueue Queue, RedisTaskInspector Inspector, RedisWorkerRegistry Workers,
    RedisSchedulerStore Scheduler, RedisWebhookDeliveries Webhooks)
{
    public static TestStore Create(IConnectionMultiplexer redis, string prefix, TimeProvider time, TaskManagerOptions? options = null)
    {
        var keys = new RedisKeys(prefix);
        var scripts = new RedisScripts(redis, new LuaLibrary(keys));
        var settings = Options.Create(options ?? new TaskManagerOptions());
        return new TestStore(keys, new RedisTaskQueue(scripts, keys, time, settings), new RedisTaskInspector(scripts, keys, time, settings),
            new RedisWorkerRegistry(scripts, keys, time, settings), new RedisSchedulerStore(scripts, redis, keys, time, settings),
            new RedisWebhookDeliveries(scripts, keys, time, settings));
    }
}
