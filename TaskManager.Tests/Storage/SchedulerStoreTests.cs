using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using TaskManager.Api;
using TaskManager.Api.Domain;
using TaskManager.Api.Storage;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Storage;

/// <summary>
/// The scheduler's sweeps against a real Redis with a fake clock: deadlines, lease expiry,
/// retries and retention, and that replicas sweeping at once never handle a task twice.
/// </summary>
[Trait("Category", "Storage")]
public sealed class SchedulerStoreTests(RedisServer redis) : IClassFixture<RedisServer>, IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider clock = new(Start);
    private readonly TaskManagerOptions options = new();
    private RedisTaskStore store = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        var keys = new RedisKeys("{sched}:");
        store = new RedisTaskStore(redis.Connection, keys, new LuaScripts(keys), clock, Options.Create(options));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task DeadlineSweep_TimesOutAnAttempt_RetryingWhileAttemptsRemain_ThenTimedOut()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync(timeout: 2, maxAttempts: 2);
        await store.LeaseAsync(worker, 1);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty((await store.SweepDeadlinesAsync(100)).Select(m => (m.TaskId, m.Status)));

        clock.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Equal([(task.Id, TaskState.Scheduled)], (await store.SweepDeadlinesAsync(100)).Select(m => (m.TaskId, m.Status)));
        Assert.True(await store.RequeueAsync(task.Id, 1));
        await store.LeaseAsync(worker, 1);
        clock.Advance(TimeSpan.FromSeconds(3));

        Assert.Equal([(task.Id, TaskState.TimedOut)], (await store.SweepDeadlinesAsync(100)).Select(m => (m.TaskId, m.Status)));
        var got = (await store.GetAsync(task.Id))!;
        Assert.Equal("timeout", JsonDocument.Parse(got.ErrorJson!).RootElement.GetProperty("code").GetString());
        Assert.Equal(["timeout", "timeout"], got.AttemptsJson!.Select(a => JsonDocument.Parse(a).RootElement.GetProperty("outcome").GetString()));
    }

    [Fact]
    public async Task LeaseSweep_QueuesTheTaskOfASilentWorkerAtOnce_AndAHeartbeatKeepsItsLease()
    {
        var silent = await RegisterAsync();
        var alive = await RegisterAsync();
        var lost = await SubmitAsync();
        var kept = await SubmitAsync();
        var lostLease = (await store.LeaseAsync(silent, 1)).Tasks.Single();
        var keptLease = (await store.LeaseAsync(alive, 1)).Tasks.Single();

        clock.Advance(TimeSpan.FromSeconds(options.LeaseTtlSeconds - 1));
        await store.HeartbeatAsync(alive, NoGpus, [(keptLease.TaskId, keptLease.LeaseToken)]);
        clock.Advance(TimeSpan.FromSeconds(2));
        var moved = (await store.SweepLeasesAsync(100)).Select(m => (m.TaskId, m.Status));

        Assert.Equal([(lost.Id, TaskState.Queued)], moved);
        Assert.Equal(TaskState.Running, (await store.GetAsync(kept.Id))!.Status);
        // The silent worker's late report is refused; the next lease is attempt 2.
        Assert.Equal(StoreError.StaleLease, (await store.CompleteAsync(lost.Id, lostLease.LeaseToken, "{}")).Error);
        Assert.Equal(2, (await store.LeaseAsync(alive, 1)).Tasks.Single().Attempt);
    }

    [Fact]
    public async Task LeaseSweep_EndsACancelingTaskOfAGoneWorker_Canceled()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        await store.LeaseAsync(worker, 1);
        await store.CancelAsync(task.Id);

        clock.Advance(TimeSpan.FromSeconds(options.LeaseTtlSeconds + 1));

        Assert.Equal([(task.Id, TaskState.Canceled)], (await store.SweepLeasesAsync(100)).Select(m => (m.TaskId, m.Status)));
    }

    [Fact]
    public async Task CancelOfAScheduledTask_EndsItAtOnce_AndAsksForItsRetryJobToBeDeleted()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.LeaseAsync(worker, 1)).Tasks.Single();
        await store.FailAsync(task.Id, leased.LeaseToken, """{"code":"oom","message":"x"}""", retryable: true, FailureKind.Error);
        Assert.True(await store.AttachRetryJobAsync(task.Id, 1, "job-17"));
        await store.TakeOutboxAsync(10);

        var outcome = await store.CancelAsync(task.Id);

        Assert.Equal(TaskState.Canceled, outcome.Status);
        var entry = Assert.Single(await store.TakeOutboxAsync(10));
        Assert.True(entry.Delete);
        Assert.Equal("job-17", await store.GetRetryJobAsync(task.Id));
        // The retry job, should it still run, finds nothing to do.
        Assert.False(await store.RequeueAsync(task.Id, 1));
        Assert.Equal(TaskState.Canceled, (await store.GetAsync(task.Id))!.Status);
    }

    [Fact]
    public async Task OverdueRetrySweep_QueuesARetryWhoseJobWasLost()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.LeaseAsync(worker, 1)).Tasks.Single();
        await store.FailAsync(task.Id, leased.LeaseToken, """{"code":"oom","message":"x"}""", retryable: true, FailureKind.Error);

        clock.Advance(TimeSpan.FromSeconds(3));
        Assert.Empty(await store.SweepOverdueRetriesAsync(100));
        clock.Advance(TimeSpan.FromSeconds(options.RetryGraceSeconds));

        Assert.Equal([task.Id], await store.SweepOverdueRetriesAsync(100));
        Assert.Equal(TaskState.Queued, (await store.GetAsync(task.Id))!.Status);
    }

    [Fact]
    public async Task RetentionSweep_RemovesFinalTasksPastRetention_AndKeepsTheRest()
    {
        var worker = await RegisterAsync();
        var old = await SubmitAsync();
        var leased = (await store.LeaseAsync(worker, 1)).Tasks.Single();
        await store.CompleteAsync(old.Id, leased.LeaseToken, "{}");
        clock.Advance(TimeSpan.FromDays(options.RetentionDays) - TimeSpan.FromMinutes(1));
        var recent = await SubmitAsync();
        await store.CancelAsync(recent.Id);
        var waiting = await SubmitAsync();
        Assert.Equal(0, await store.SweepRetentionAsync(100));

        clock.Advance(TimeSpan.FromMinutes(2));

        Assert.Equal(1, await store.SweepRetentionAsync(100));
        Assert.Null(await store.GetAsync(old.Id));
        Assert.NotNull(await store.GetAsync(recent.Id));
        Assert.NotNull(await store.GetAsync(waiting.Id));
        var listed = await store.ListAsync(new TaskQuery(TaskState.All, TaskTypes.All, 100, null));
        Assert.Equal([waiting.Id, recent.Id], listed.Items.Select(t => t.Id));
    }

    [Fact]
    public async Task SweepsRunningAtOnce_AsReplicasDo_HandleEachTaskOnce()
    {
        var worker = await RegisterAsync();
        for (var i = 0; i < 50; i++)
        {
            await SubmitAsync(timeout: 1);
        }
        await store.LeaseAsync(worker, 50);
        clock.Advance(TimeSpan.FromSeconds(2));

        var sweeps = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => store.SweepDeadlinesAsync(10)));
        var handled = sweeps.SelectMany(s => s).Select(m => m.TaskId).ToList();
        while (await store.SweepDeadlinesAsync(100) is { Count: > 0 } more)
        {
            handled.AddRange(more.Select(m => m.TaskId));
        }

        Assert.Equal(50, handled.Count);
        Assert.Equal(50, handled.Distinct().Count());
        Assert.Equal(50, (await store.TakeOutboxAsync(1000)).Count);
    }

    [Fact]
    public async Task DeadWorkerSweep_ForgetsWorkersSilentPastTheRetention_AndKeepsLiveOnes()
    {
        var gone = await RegisterAsync();
        clock.Advance(TimeSpan.FromMinutes(options.DeadWorkerRetentionMinutes - 1));
        var live = await RegisterAsync();
        clock.Advance(TimeSpan.FromMinutes(2));

        Assert.Equal(1, await store.SweepDeadWorkersAsync(100));

        Assert.Equal([live], (await store.ListWorkersAsync(100)).Select(w => w.Id));
        Assert.Null(await store.HeartbeatAsync(gone, NoGpus, []));
    }

    [Fact]
    public async Task AWorkerForgottenWhileItRanATask_IsNotBroughtBackByItsLateResult()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.LeaseAsync(worker, 1)).Tasks.Single();
        clock.Advance(TimeSpan.FromMinutes(options.DeadWorkerRetentionMinutes + 1));
        Assert.Equal(1, await store.SweepDeadWorkersAsync(100));

        // Its lease is long gone by now, but a report may still arrive before the lease sweep.
        var outcome = await store.CompleteAsync(task.Id, leased.LeaseToken, "{}");

        Assert.True(outcome.Ok);
        Assert.Empty(await store.ListWorkersAsync(100));
        Assert.False(await redis.Db.KeyExistsAsync(new RedisKeys("{sched}:").Worker(worker)));
    }

    [Fact]
    public async Task EventsOfARetriedAttempt_AreToldApartFromTheFailedOnes()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var first = (await store.LeaseAsync(worker, 1)).Tasks.Single();
        await store.ReportProgressAsync(task.Id, first.LeaseToken, 0.5, "half", ["a", "b"], ["first try"]);
        await store.FailAsync(task.Id, first.LeaseToken, """{"code":"oom","message":"x"}""", retryable: true, FailureKind.Error);
        await store.RequeueAsync(task.Id, 1);
        var second = (await store.LeaseAsync(worker, 1)).Tasks.Single();
        await store.ReportProgressAsync(task.Id, second.LeaseToken, null, null, ["c"]);

        var events = await store.ReadEventsAsync(task.Id, null, 100);

        Assert.Equal(
            ["status 0 queued", "status 1 running", "progress 1", "chunk 1 1 a", "chunk 1 2 b", "log 1", "status 1 scheduled",
             "status 1 queued", "status 2 running", "chunk 2 1 c"],
            events.Select(Describe));
        var afterFirstTwo = await store.ReadEventsAsync(task.Id, events[1].Id, 100);
        Assert.Equal(events.Skip(2).Select(e => e.Id), afterFirstTwo.Select(e => e.Id));

        static string Describe(TaskEvent e)
        {
            var data = JsonDocument.Parse(e.DataJson).RootElement;
            return e.Kind switch
            {
                "status" => $"status {e.Attempt} {data.GetProperty("status").GetString()}",
                "chunk" => $"chunk {e.Attempt} {data.GetProperty("index").GetInt32()} {data.GetProperty("text").GetString()}",
                _ => $"{e.Kind} {e.Attempt}",
            };
        }
    }

    private Task<string> RegisterAsync() =>
        store.RegisterAsync(new WorkerRegistration("w", [TaskTypes.Llm], "{}"));

    private async Task<TaskRecord> SubmitAsync(int timeout = 300, int maxAttempts = 3)
    {
        // One millisecond apart, so the order of ids is the order of submission.
        clock.Advance(TimeSpan.FromMilliseconds(1));
        return (await store.SubmitAsync(new TaskRequest(TaskTypes.Llm, """{"prompt":"x"}""", null, 5, timeout, maxAttempts, null, null), null)).Task!;
    }

    private static readonly WorkerState NoGpus = new("{}", 0, [], []);
}
