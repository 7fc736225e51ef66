using System.Globalization;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>
/// Tenants' webhook signing secrets: one hash a tenant, <c>whsecret:{tenant}</c>, with
/// <c>current</c> (<c>{created, ms}|{secret}</c>) and, after a rotation, <c>previous</c>
/// (<c>{valid until, ms}|{secret}</c>). Plain commands on that one key, which is under the
/// deployment's hash tag, so they work the same on a Redis Cluster:
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>A first secret is written with HSETNX and then read back, so callers racing to make one
/// (on any replica) all end with the one that was written first.</item>
/// <item>A rotation is a transaction conditioned on the current value it replaces (WATCH): if
/// another rotation came between the read and the write, nothing is written and it starts over
/// from the new current secret, so no rotation is lost and no secret is half replaced.</item>
/// <item>New secrets come from <paramref name="newSecret"/> (<see cref="WebhookSecretInfo.NewSecret"/>
/// unless a test gives another, to act between a read and a write).</item>
/// <item>The previous secret's end is compared with the injected clock when read; the field is
/// left in place past it (the next rotation overwrites it).</item>
/// </list>
/// </remarks>
public sealed class RedisWebhookSecrets(IConnectionMultiplexer redis, RedisKeys keys, TimeProvider time, Func<string>? newSecret = null)
    : IWebhookSecrets
{
    private readonly Func<string> newSecret = newSecret ?? WebhookSecretInfo.NewSecret;

    private const string Current = "current";
    private const string Previous = "previous";
    private static readonly RedisValue[] Fields = [Current, Previous];

    /// <summary>Rotations that lose the race this many times in a row give up (others are rotating the same tenant's secret).</summary>
    private const int MaxRotationTries = 50;

    public async Task<IReadOnlyList<string>> SigningSecretsAsync(string tenant) => (await GetAsync(tenant).ConfigureAwait(false)).SigningSecrets;

    public async Task<WebhookSecretInfo> GetAsync(string tenant)
    {
        var db = redis.GetDatabase();
        var key = keys.WebhookSecret(tenant);
        var stored = await db.HashGetAsync(key, Fields).ConfigureAwait(false);
        if (stored[0].IsNull)
        {
            await db.HashSetAsync(key, Current, Stamp(time.GetUtcNow(), newSecret()), When.NotExists).ConfigureAwait(false);
            stored = await db.HashGetAsync(key, Fields).ConfigureAwait(false);
        }
        return Read(stored[0], stored[1], time.GetUtcNow());
    }

    public async Task<WebhookSecretInfo> RotateAsync(string tenant)
    {
        var db = redis.GetDatabase();
        var key = keys.WebhookSecret(tenant);
        for (var tries = 0; tries < MaxRotationTries; tries++)
        {
            var replaced = await db.HashGetAsync(key, Current).ConfigureAwait(false);
            var now = time.GetUtcNow();
            RedisValue current = Stamp(now, newSecret());
            RedisValue previous = replaced.IsNull ? RedisValue.Null : (RedisValue)Stamp(now + WebhookSecretInfo.PreviousValidFor, Parse(replaced).Secret);

            var transaction = db.CreateTransaction();
            transaction.AddCondition(replaced.IsNull ? Condition.HashNotExists(key, Current) : Condition.HashEqual(key, Current, replaced));
            _ = previous.IsNull
                ? transaction.HashSetAsync(key, Current, current)
                : transaction.HashSetAsync(key, [new HashEntry(Current, current), new HashEntry(Previous, previous)]);
            if (await transaction.ExecuteAsync().ConfigureAwait(false))
            {
                return Read(current, previous, now);
            }
        }
        throw new InvalidOperationException(
            $"The webhook secret of tenant '{tenant}' changed under each of {MaxRotationTries} rotations in a row; try again.");
    }

    private static WebhookSecretInfo Read(RedisValue current, RedisValue previous, DateTimeOffset now)
    {
        var (created, secret) = Parse(current);
        if (!previous.IsNull && Parse(previous) is var (validUntil, old) && validUntil > now)
        {
            return new WebhookSecretInfo(secret, created, old, validUntil);
        }
        return new WebhookSecretInfo(secret, created, null, null);
    }

    private static string Stamp(DateTimeOffset at, string secret) =>
        string.Concat(at.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture), "|", secret);

    private static (DateTimeOffset At, string Secret) Parse(RedisValue stamped)
    {
        var text = (string)stamped!;
        var bar = text.IndexOf('|', StringComparison.Ordinal);
        return (DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(text.AsSpan(0, bar), CultureInfo.InvariantCulture)), text[(bar + 1)..]);
    }
}
