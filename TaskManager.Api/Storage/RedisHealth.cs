using System.Diagnostics;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>Redis's health as the deployment sees it, and what a Redis exception means for a caller.</summary>
public sealed class RedisHealth(IConnectionMultiplexer redis, RedisKeys keys) : IStoreHealth
{
    /// <summary>Server errors that mean Redis is away or busy for a moment, not that it refuses the request.</summary>
    private static readonly string[] Transient = ["CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY", "NOREPLICAS"];

    public async Task<StoreHealth> CheckAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            // The node that serves the deployment's keys (on a cluster, not any node).
            var db = redis.GetDatabase();
            var node = await db.IdentifyEndpointAsync(keys.Workers).WaitAsync(timeout).ConfigureAwait(false);
            var ping = node is null ? db.PingAsync() : redis.GetServer(node).PingAsync();
            await ping.WaitAsync(timeout).ConfigureAwait(false);
            return new StoreHealth(true, clock.Elapsed.TotalMilliseconds, null);
        }
        catch (Exception ex) when (ex is TimeoutException || Describe(ex) is not null)
        {
            return new StoreHealth(false, null, ex.Message);
        }
    }

    public StoreFault? Describe(Exception exception) => exception switch
    {
        RedisConnectionException or RedisTimeoutException or ObjectDisposedException { ObjectName: "ConnectionMultiplexer" }
            // The client's socket and pipe layers, surfacing a lost connection as their own errors.
            or IOException { Source: "Pipelines.Sockets.Unofficial" or "StackExchange.Redis" }
            or InvalidOperationException { Source: "System.IO.Pipelines" } =>
            new StoreFault(StoreFaultKind.Unavailable, "Redis cannot be reached; retry shortly."),
        RedisServerException server when server.Message.StartsWith("LOADING", StringComparison.Ordinal) =>
            new StoreFault(StoreFaultKind.Starting, "Redis is loading its data; retry shortly."),
        RedisServerException server when Transient.Any(code => server.Message.StartsWith(code, StringComparison.Ordinal)) =>
            new StoreFault(StoreFaultKind.Unavailable, $"Redis is not ready to serve this request ({server.Message}); retry shortly."),
        RedisException redisError =>
            new StoreFault(StoreFaultKind.Refused, $"Redis refused the request: {redisError.Message}"),
        _ => null,
    };
}
