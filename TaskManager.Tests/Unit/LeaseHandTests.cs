using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using TaskManager.Api.Coordination;

namespace TaskManager.Tests.Unit;

/// <summary>
/// A submission claims a lease that waits on its replica and hands it the task. Only a lease that
/// waits can be claimed, and a claim always reaches its lease, even one made as the wait ends or
/// as the caller gives up: a task leased to a worker that is never told would sit until its lease
/// expired.
/// </summary>
[Trait("Category", "Unit")]
public sealed class LeaseHandTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(5);
    private readonly FakeTimeProvider clock = new();
    private readonly LeaseWaiters notifier;

    // Claims and wake-ups never touch Redis; the waits' timers run on a clock the tests move.
    public LeaseHandTests() => notifier = new(null!, new LongPoll(clock), NullLogger<LeaseWaiters>.Instance);

    [Fact]
    public async Task AWaitingLease_IsClaimed_AndItsWaitEndsWithTheHand()
    {
        using var waiter = notifier.Register(["llm"], [], "w_1", 4);
        var waiting = waiter.WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None);

        var hand = notifier.Claim("llm", null);

        Assert.NotNull(hand);
        Assert.Equal(("w_1", 4), (hand.WorkerId, hand.MaxTasks));
        var wake = await waiting.WaitAsync(Bound);
        Assert.Same(hand, wake!.Hand);
        // Claimed once: another submission finds no one waiting.
        Assert.Null(notifier.Claim("llm", null));
    }

    [Fact]
    public void ALeaseStillLookingForWork_IsNotClaimed_ButANotificationWakesIt()
    {
        using var waiter = notifier.Register(["llm"], [], "w_1", 1);

        Assert.Null(notifier.Claim("llm", null));
        notifier.Notify("llm");
        Assert.True(waiter.WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None).IsCompletedSuccessfully);
    }

    [Fact]
    public async Task ALeaseWithTheModelLoaded_IsClaimedFirst_AndOneOfAnotherType_Never()
    {
        using var other = notifier.Register(["sd"], [], "w_sd", 1);
        using var plain = notifier.Register(["llm"], [], "w_plain", 1);
        using var loaded = notifier.Register(["llm"], ["llama"], "w_llama", 1);
        var waits = new[] { other, plain, loaded }.Select(w => w.WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None)).ToArray();

        Assert.Equal("w_llama", notifier.Claim("llm", "llama")?.WorkerId);
        Assert.Equal("w_plain", notifier.Claim("llm", "llama")?.WorkerId);
        Assert.Null(notifier.Claim("llm", null));
        Assert.False(waits[0].IsCompleted);
        await Task.WhenAll(waits[1..]).WaitAsync(Bound);
    }

    [Fact]
    public async Task AClaimMadeAsTheCallerGivesUp_StillReachesTheLease()
    {
        using var waiter = notifier.Register(["llm"], [], "w_1", 1);
        using var aborted = new CancellationTokenSource();
        var waiting = waiter.WaitAsync(TimeSpan.FromSeconds(30), aborted.Token);

        var hand = notifier.Claim("llm", null);
        await aborted.CancelAsync();

        // The wait gives the hand rather than throwing: the submission is leasing this worker a task.
        Assert.Same(hand, (await waiting.WaitAsync(Bound))!.Hand);
    }

    [Fact]
    public async Task ALeaseWhoseWaitEnded_IsNotClaimed()
    {
        using var waiter = notifier.Register(["llm"], [], "w_1", 1);
        using (var aborted = new CancellationTokenSource())
        {
            var waiting = waiter.WaitAsync(TimeSpan.FromSeconds(30), aborted.Token);
            await aborted.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        }
        using var timedOut = notifier.Register(["llm"], [], "w_2", 1);
        var waitingOut = timedOut.WaitAsync(TimeSpan.FromSeconds(1), CancellationToken.None);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(await waitingOut.WaitAsync(Bound));

        Assert.Null(notifier.Claim("llm", null));
    }
}
