using StackExchange.Redis;

namespace TaskManager.Api.Storage;

/// <summary>
/// Calls the scripts of the <see cref="LuaLibrary"/> (FCALL): one round trip each. Every call names
/// the keys it is about as KEYS, all under the deployment's hash tag, so that a Redis Cluster
/// routes it to the node that owns their slot (StackExchange.Redis reads the slot from the
/// <see cref="RedisKey"/> arguments); the keys a script derives from them share that slot.
/// </summary>
/// <remarks>
/// A node without the library (a new or restarted Redis without persistence, the new owner of the
/// slot after a resharding, a replica promoted before the library reached it) answers "Function not
/// found"; the library is then loaded on that node, the one that owns the call's first key, and
/// the call made again.
/// </remarks>
public sealed class RedisScripts(IConnectionMultiplexer redis, LuaLibrary library)
{
    public async Task<RedisResult> RunAsync(Script script, RedisKey[] keys, RedisValue[] values)
    {
        var args = new object[2 + keys.Length + values.Length];
        args[0] = library.FunctionOf(script);
        args[1] = keys.Length;
        for (var i = 0; i < keys.Length; i++)
        {
            args[2 + i] = keys[i];
        }
        for (var i = 0; i < values.Length; i++)
        {
            args[2 + keys.Length + i] = values[i];
        }
        var db = redis.GetDatabase();
        try
        {
            return await db.ExecuteAsync("FCALL", args).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("Function not found", StringComparison.OrdinalIgnoreCase))
        {
            await LoadAsync(db, keys[0]).ConfigureAwait(false);
            return await db.ExecuteAsync("FCALL", args).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex)
        {
            // A connection lost while a call is in flight can reach the caller as a canceled task,
            // not as a RedisConnectionException (no call here takes a cancellation token, so a
            // cancel can only come from the connection): Redis was away, and the client gets a
            // 503 to retry. The socket and pipe layers' own errors are told by RedisHealth.
            throw new RedisConnectionException(ConnectionFailureType.SocketFailure,
                $"The connection to Redis was lost during the call ({ex.Message}).", ex);
        }
    }

    /// <summary>Loads the library on the node that serves <paramref name="key"/>.</summary>
    private async Task LoadAsync(IDatabase db, RedisKey key)
    {
        var node = await db.IdentifyEndpointAsync(key).ConfigureAwait(false)
            ?? throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, $"No Redis node serves the slot of '{key}'.");
        await redis.GetServer(node).ExecuteAsync("FUNCTION", "LOAD", "REPLACE", library.Text).ConfigureAwait(false);
    }
}
