using System.Diagnostics;
using TaskManager.Api.Storage;

namespace TaskManager.Tests.Unit;

/// <summary>
/// Long polls of 10 s or more that time out end on a shared one-second grid, so that the waits of
/// an idle fleet that end in the same second end together (one wake-up of the API's threads, not
/// one per wait), never late and at most a second and a half early. An answered wait still ends
/// at once.
/// </summary>
[Trait("Category", "Unit")]
public sealed class LongPollTests
{
    [Fact]
    public async Task WaitsThatEndInTheSameSecond_EndTogether_NeverLate_AndAtMostASecondAndAHalfEarly()
    {
        var never = new TaskCompletionSource().Task;
        var clock = Stopwatch.StartNew();
        // 10 waits asked to end 250 ms apart, over 2.25 s: one timer each would end them at 10
        // moments; on the grid they end in the 3 or 4 seconds their times fall in.
        var asked = Enumerable.Range(0, 10).Select(i => TimeSpan.FromSeconds(10) + TimeSpan.FromMilliseconds(250 * i)).ToArray();
        var waits = asked.Select(async timeout =>
        {
            var answered = await LongPoll.WaitAsync(never, timeout, CancellationToken.None);
            return (answered, ended: clock.Elapsed);
        }).ToArray();
        var results = await Task.WhenAll(waits).WaitAsync(TimeSpan.FromSeconds(30));

        for (var i = 0; i < results.Length; i++)
        {
            Assert.False(results[i].answered);
            // Never a grid second late (the margin is for a busy machine's scheduling).
            Assert.True(results[i].ended <= asked[i] + TimeSpan.FromMilliseconds(500),
                $"A wait of {asked[i].TotalSeconds:0.000} s ended after {results[i].ended.TotalSeconds:0.000} s.");
            Assert.True(results[i].ended >= asked[i] - TimeSpan.FromSeconds(1.5),
                $"A wait of {asked[i].TotalSeconds:0.000} s ended after only {results[i].ended.TotalSeconds:0.000} s.");
        }
        // Moments at least 150 ms apart (the grid's are a second apart; one timer each, 250 ms).
        var moments = results.Select(r => r.ended).Order().Aggregate(new List<TimeSpan>(), (list, t) =>
        {
            if (list.Count == 0 || t - list[^1] > TimeSpan.FromMilliseconds(150))
            {
                list.Add(t);
            }
            return list;
        });
        Assert.True(moments.Count <= 4, $"The 10 waits ended at {moments.Count} different moments.");
    }

    [Fact]
    public async Task ALongWait_ThatIsAnswered_EndsAtOnce()
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var clock = Stopwatch.StartNew();
        var wait = LongPoll.WaitAsync(signal.Task, TimeSpan.FromSeconds(55), CancellationToken.None);
        Assert.False(wait.IsCompleted);
        signal.SetResult();
        Assert.True(await wait.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task ALongWait_ThatIsCanceled_Throws()
    {
        using var abort = new CancellationTokenSource();
        var wait = LongPoll.WaitAsync(new TaskCompletionSource().Task, TimeSpan.FromSeconds(55), abort.Token);
        await abort.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(TimeSpan.FromSeconds(5)));
    }
}
