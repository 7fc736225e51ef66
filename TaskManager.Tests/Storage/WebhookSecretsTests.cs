using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using TaskManager.Api.Domain;
using TaskManager.Api.Storage;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Storage;

/// <summary>
/// Tenants' webhook signing secrets against a real Redis with a fake clock: made once and kept,
/// agreed on by callers racing to make the first, and rotated with the old one signing beside the
/// new one for 24 hours.
/// </summary>
public abstract class WebhookSecretsTests<TRedis>(TRedis redis) : IClassFixture<TRedis>, IAsyncLifetime
    where TRedis : class, ITestRedis
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider clock = new(Start);
    private RedisKeys keys = null!;
    private RedisWebhookSecrets secrets = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        keys = new RedisKeys("{whs}:");
        secrets = new RedisWebhookSecrets(redis.Connection, keys, clock);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task ATenantsFirstSecret_IsMadeOnce_AndKept()
    {
        var first = await secrets.GetAsync("acme");
        clock.Advance(TimeSpan.FromDays(3));

        var again = await secrets.GetAsync("acme");
        var signing = await secrets.SigningSecretsAsync("acme");

        Assert.StartsWith("whsec_", first.Secret, StringComparison.Ordinal);
        Assert.Equal(Start, first.CreatedAt);
        Assert.Null(first.PreviousSecret);
        Assert.Null(first.PreviousValidUntil);
        Assert.Equal(first, again);
        Assert.Equal([first.Secret], signing);
        // Each tenant has its own, in one key under the deployment's prefix.
        Assert.NotEqual(first.Secret, (await secrets.GetAsync("globex")).Secret);
        Assert.True(await redis.Db.KeyExistsAsync(keys.WebhookSecret("acme")));
        Assert.Equal("{whs}:whsecret:acme", keys.WebhookSecret("acme"));
    }

    [Fact]
    public async Task ACallerThatFoundNone_WhileAnotherMadeOne_AnswersTheOneThatWasMade()
    {
        // Between its read (none yet) and its write, another replica makes the tenant's secret.
        var other = new RedisWebhookSecrets(redis.Connection, keys, clock);
        string? othersSecret = null;
        var late = new RedisWebhookSecrets(redis.Connection, keys, clock, newSecret: () =>
        {
            othersSecret ??= other.GetAsync("acme").GetAwaiter().GetResult().Secret;
            return WebhookSecretInfo.NewSecret();
        });

        var answered = await late.GetAsync("acme");

        Assert.NotNull(othersSecret);
        Assert.Equal(othersSecret, answered.Secret);
        Assert.Equal([othersSecret], await other.SigningSecretsAsync("acme"));
    }

    [Fact]
    public async Task CallersRacingToMakeTheFirstSecret_AllGetTheOneThatWasKept()
    {
        // Each as another replica would: its own store on the same Redis.
        var racers = Enumerable.Range(0, 16).Select(_ => new RedisWebhookSecrets(redis.Connection, keys, clock)).ToArray();

        var got = await Task.WhenAll(racers.Select(async (store, i) =>
            i % 2 == 0 ? (await store.GetAsync("acme")).Secret : (await store.SigningSecretsAsync("acme")).Single()));

        var kept = (await secrets.GetAsync("acme")).Secret;
        Assert.All(got, secret => Assert.Equal(kept, secret));
    }

    [Fact]
    public async Task ARotation_SignsWithTheNewAndTheOld_ForADay_ThenWithTheNewOnly()
    {
        var old = await secrets.GetAsync("acme");
        clock.Advance(TimeSpan.FromHours(1));
        var rotatedAt = clock.GetUtcNow();

        var rotated = await secrets.RotateAsync("acme");

        Assert.NotEqual(old.Secret, rotated.Secret);
        Assert.Equal(rotatedAt, rotated.CreatedAt);
        Assert.Equal(old.Secret, rotated.PreviousSecret);
        Assert.Equal(rotatedAt + TimeSpan.FromHours(24), rotated.PreviousValidUntil);
        Assert.Equal(rotated, await secrets.GetAsync("acme"));
        Assert.Equal([rotated.Secret, old.Secret], await secrets.SigningSecretsAsync("acme"));

        clock.Advance(TimeSpan.FromHours(24) - TimeSpan.FromSeconds(1));
        Assert.Equal([rotated.Secret, old.Secret], await secrets.SigningSecretsAsync("acme"));

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal([rotated.Secret], await secrets.SigningSecretsAsync("acme"));
        var after = await secrets.GetAsync("acme");
        Assert.Equal((rotated.Secret, (string?)null, (DateTimeOffset?)null), (after.Secret, after.PreviousSecret, after.PreviousValidUntil));
    }

    [Fact]
    public async Task ASecondRotation_DropsTheOldest_AndRotatingATenantWithoutOne_MakesItsFirst()
    {
        var first = await secrets.GetAsync("acme");
        var second = await secrets.RotateAsync("acme");
        var third = await secrets.RotateAsync("acme");
        var fresh = await secrets.RotateAsync("globex");

        Assert.Equal([third.Secret, second.Secret], await secrets.SigningSecretsAsync("acme"));
        Assert.DoesNotContain(first.Secret, await secrets.SigningSecretsAsync("acme"));
        Assert.Null(fresh.PreviousSecret);
        Assert.Equal([fresh.Secret], await secrets.SigningSecretsAsync("globex"));
    }

    [Fact]
    public async Task ARotation_ThatAnotherOvertakes_IsMadeOnTopOfIt_NotInstead()
    {
        var first = await secrets.GetAsync("acme");
        // Between its read of the current secret and its write, another replica rotates.
        var other = new RedisWebhookSecrets(redis.Connection, keys, clock);
        WebhookSecretInfo? overtaking = null;
        var late = new RedisWebhookSecrets(redis.Connection, keys, clock, newSecret: () =>
        {
            overtaking ??= other.RotateAsync("acme").GetAwaiter().GetResult();
            return WebhookSecretInfo.NewSecret();
        });

        var rotated = await late.RotateAsync("acme");

        Assert.Equal(first.Secret, overtaking!.PreviousSecret);
        Assert.Equal(overtaking.Secret, rotated.PreviousSecret);
        Assert.Equal([rotated.Secret, overtaking.Secret], await secrets.SigningSecretsAsync("acme"));
    }

    [Fact]
    public async Task RotationsAtOnce_AreEachKept_OneAfterAnother()
    {
        var first = await secrets.GetAsync("acme");
        var racers = Enumerable.Range(0, 8).Select(_ => new RedisWebhookSecrets(redis.Connection, keys, clock)).ToArray();

        var rotations = await Task.WhenAll(racers.Select(store => store.RotateAsync("acme")));

        // Each replaced the one before it: the previous secrets chain from the first to the last.
        var byPrevious = rotations.ToDictionary(r => r.PreviousSecret!, r => r.Secret);
        var chain = new List<string> { first.Secret };
        while (byPrevious.TryGetValue(chain[^1], out var next))
        {
            chain.Add(next);
        }
        Assert.Equal(rotations.Length + 1, chain.Count);
        Assert.Equal([chain[^1], chain[^2]], await secrets.SigningSecretsAsync("acme"));
    }
}

[Trait("Category", "Storage")]
public sealed class WebhookSecretsOnOneRedis(RedisServer redis) : WebhookSecretsTests<RedisServer>(redis);
