using Microsoft.Extensions.Time.Testing;
using TaskManager.Api.Coordination;

namespace TaskManager.Tests.Unit;

/// <summary>
/// Long polls of 10 s or more that time out end on a shared one-second grid, so that the waits of
/// an idle fleet that end in the same second end together (one wake-up of the API's threads, not
/// one per wait), never late and at most a second and a half early. An answered wait still ends
/// at once; a short wait keeps its own timer. On a fake clock the test moves.
/// </summary>
[Trait("Category", "Unit")]
public sealed class LongPollTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(5);
    private readonly FakeTimeProvider clock = new();
    private readonly LongPoll poll;

    public LongPollTests() => poll = new LongPoll(clock);

    [Fact]
    public async Task WaitsThatEndInTheSameSecond_EndTogether_NeverLate_AndAtMostASecondAndAHalfEarly()
    {
        var never = new TaskCompletionSource().Task;
        // 10 waits asked to end 250 ms apart, from 10 s to 12.25 s: one timer each would end them
        // at 10 moments; on the grid they end at the 3 whole seconds their times fall in.
        var asked = Enumerable.Range(0, 10).Select(i => TimeSpan.FromSeconds(10) + TimeSpan.FromMilliseconds(250 * i)).ToArray();
        var waits = asked.Select(timeout => poll.WaitAsync(never, timeout, CancellationToken.None)).ToArray();
        var ended = new TimeSpan?[waits.Length];
        var now = TimeSpan.Zero;

        foreach (var second in (int[])[10, 11, 12])
        {
            // Up to just before the whole second, nothing ends; at it, the waits of that second end.
            clock.Advance(TimeSpan.FromSeconds(second) - TimeSpan.FromMilliseconds(1) - now);
            clock.Advance(TimeSpan.FromMilliseconds(1));
            now = TimeSpan.FromSeconds(second);
            var due = Enumerable.Range(0, waits.Length).Where(i => ended[i] is null && (int)asked[i].TotalSeconds == second).ToArray();
            await Task.WhenAll(due.Select(i => waits[i])).WaitAsync(Bound);
            foreach (var i in due)
            {
                ended[i] = now;
            }
            Assert.All(Enumerable.Range(0, waits.Length).Where(i => ended[i] is null), i => Assert.False(waits[i].IsCompleted,
                $"The wait asked for {asked[i].TotalSeconds:0.00} s ended at {now.TotalSeconds} s."));
        }

        for (var i = 0; i < waits.Length; i++)
        {
            Assert.False(await waits[i]);
            Assert.True(ended[i] <= asked[i], $"A wait of {asked[i].TotalSeconds:0.00} s ended late, at {ended[i]?.TotalSeconds} s.");
            Assert.True(ended[i] >= asked[i] - TimeSpan.FromSeconds(1.5), $"A wait of {asked[i].TotalSeconds:0.00} s ended at {ended[i]?.TotalSeconds} s.");
        }
        Assert.Equal(3, ended.Distinct().Count());
    }

    [Fact]
    public async Task AShortWait_EndsOnItsOwnTimer_WhenItsTimeIsUp()
    {
        var wait = poll.WaitAsync(new TaskCompletionSource().Task, TimeSpan.FromSeconds(3), CancellationToken.None);

        clock.Advance(TimeSpan.FromMilliseconds(2999));
        Assert.False(wait.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.False(await wait.WaitAsync(Bound));
    }

    [Fact]
    public async Task ALongWait_ThatIsAnswered_EndsAtOnce()
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var wait = poll.WaitAsync(signal.Task, TimeSpan.FromSeconds(55), CancellationToken.None);
        Assert.False(wait.IsCompleted);

        signal.SetResult();

        // The clock has not moved: the answer, not a timer, ended it.
        Assert.True(await wait.WaitAsync(Bound));
    }

    [Fact]
    public async Task ALongWait_ThatIsCanceled_Throws()
    {
        using var abort = new CancellationTokenSource();
        var wait = poll.WaitAsync(new TaskCompletionSource().Task, TimeSpan.FromSeconds(55), abort.Token);
        await abort.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Bound));
    }
}
