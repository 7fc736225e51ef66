using Microsoft.Extensions.Options;

namespace TaskManager.Api.Storage;

/// <summary>What each part of the Redis storage works with: the scripts, the keys, the clock and the settings.</summary>
public abstract class RedisStore(RedisScripts scripts, RedisKeys keys, TimeProvider time, IOptions<TaskManagerOptions> options)
{
    protected RedisScripts Scripts { get; } = scripts;

    protected RedisKeys Keys { get; } = keys;

    protected TimeProvider Time { get; } = time;

    protected TaskManagerOptions Options => options.Value;

    protected long NowMs => Time.GetUtcNow().ToUnixTimeMilliseconds();
}
