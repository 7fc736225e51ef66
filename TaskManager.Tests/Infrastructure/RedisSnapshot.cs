using StackExchange.Redis;

namespace TaskManager.Tests.Infrastructure;

/// <summary>Every key in Redis with its serialized value (DUMP): equal snapshots mean nothing changed.</summary>
public sealed class RedisSnapshot
{
    private readonly SortedDictionary<string, string> entries;

    private RedisSnapshot(SortedDictionary<string, string> entries) => this.entries = entries;

    public static async Task<RedisSnapshot> TakeAsync(RedisServer redis, string pattern = "*")
    {
        var server = redis.Connection.GetServer(redis.Connection.GetEndPoints()[0]);
        var entries = new SortedDictionary<string, string>(StringComparer.Ordinal);
        await foreach (var key in server.KeysAsync(pattern: pattern, pageSize: 1000))
        {
            var dump = await redis.Db.KeyDumpAsync(key);
            entries[key!] = dump is null ? "" : Convert.ToBase64String(dump);
        }
        return new RedisSnapshot(entries);
    }

    public int Count => entries.Count;

    /// <summary>The keys added, removed or changed since <paramref name="before"/>.</summary>
    public IReadOnlyList<string> DifferencesFrom(RedisSnapshot before) =>
        entries.Keys.Union(before.entries.Keys)
            .Where(k => entries.GetValueOrDefault(k) != before.entries.GetValueOrDefault(k))
            .Order(StringComparer.Ordinal)
            .ToArray();
}
