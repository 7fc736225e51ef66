using Hangfire;
using Hangfire.Redis.StackExchange;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>The Redis storage's wiring: the client, the script library and the ports the rest of the service uses.</summary>
public static class StorageSetup
{
    public static WebApplicationBuilder AddRedisStorage(this WebApplicationBuilder builder, TaskManagerOptions options)
    {
        if (string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString("redis")))
        {
            throw new InvalidOperationException(
                "No Redis connection string: set ConnectionStrings__redis (for example 'localhost:6379,password=...', or the " +
                "nodes of a Redis Cluster, 'host1:6379,host2:6379,host3:6379,password=...'), or run the AppHost.");
        }
        // Redis command spans only where traces are exported (see ConfigureOpenTelemetry).
        var traced = Microsoft.Extensions.Hosting.Extensions.HasOtlpExporter(builder.Configuration);
        builder.AddRedisClient("redis", configureSettings: settings => settings.DisableTracing = !traced, configureOptions: redis =>
        {
            // Start and keep retrying while Redis is away; requests meanwhile answer 503.
            redis.AbortOnConnectFail = false;
            // Socket reads on .NET's thread pool rather than the library's own dedicated threads,
            // which on a small machine spin and contend with the request threads.
            redis.SocketManager = SocketManager.ThreadPool;
        });

        var services = builder.Services;
        services.AddSingleton(new RedisKeys(options.KeyPrefix));
        services.AddSingleton<LuaLibrary>();
        services.AddSingleton<RedisScripts>();
        services.AddSingleton<RedisTaskQueue>();
        services.AddSingleton<ITaskQueue>(sp => sp.GetRequiredService<RedisTaskQueue>());
        services.AddSingleton<IQueueControl>(sp => sp.GetRequiredService<RedisTaskQueue>());
        services.AddSingleton<ITaskInspector, RedisTaskInspector>();
        services.AddSingleton<IWorkerRegistry, RedisWorkerRegistry>();
        services.AddSingleton<ISchedulerStore, RedisSchedulerStore>();
        services.AddSingleton<ITaskSignals, RedisSignals>();
        services.AddSingleton<IStoreHealth, RedisHealth>();
        services.AddSingleton<IWebhookDeliveries, RedisWebhookDeliveries>();
        services.AddSingleton<IWebhookSecrets, RedisWebhookSecrets>();
        return builder;
    }

    /// <summary>
    /// Hangfire's storage on the same Redis under its own prefix. Hangfire changes several keys in
    /// one transaction, which a Redis Cluster allows only within one slot: the prefix is a hash tag
    /// (see <see cref="TaskManagerOptions.HangfirePrefix"/>), so all of Hangfire's keys share one.
    /// </summary>
    public static JobStorage HangfireStorage(IServiceProvider services) => new RedisStorage(
        services.GetRequiredService<IConnectionMultiplexer>(),
        new RedisStorageOptions { Prefix = services.GetRequiredService<IOptions<TaskManagerOptions>>().Value.HangfirePrefix });
}
