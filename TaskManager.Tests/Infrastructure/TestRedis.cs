using StackExchange.Redis;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A real Redis deployment the tests start: one <see cref="RedisServer"/>, or a
/// <see cref="RedisCluster"/> of three primaries. Storage and end-to-end tests run on either.
/// </summary>
public interface ITestRedis : IAsyncLifetime
{
    /// <summary>A StackExchange.Redis connection string, as <c>ConnectionStrings__redis</c> takes it.</summary>
    string ConnectionString { get; }

    ConnectionMultiplexer Connection { get; }

    IDatabase Db { get; }

    /// <summary>Every primary, where a command without a key must go to all of them.</summary>
    IEnumerable<IServer> Primaries { get; }

    /// <summary>Empties every primary (FLUSHALL); the function library stays.</summary>
    Task FlushAsync();

    /// <summary>Deletes the function library on every primary, as a Redis restarted without persistence lost it.</summary>
    Task FlushFunctionsAsync();
}

/// <summary>What both deployments do the same way.</summary>
internal static class TestRedis
{
    public static IEnumerable<IServer> Primaries(ConnectionMultiplexer connection) =>
        connection.GetServers().Where(s => s.IsConnected && !s.IsReplica);

    /// <summary>Runs a command without a key on every primary.</summary>
    public static async Task OnEveryPrimaryAsync(ConnectionMultiplexer connection, string command, params object[] args)
    {
        foreach (var server in Primaries(connection))
        {
            await server.ExecuteAsync(command, args);
        }
    }
}
