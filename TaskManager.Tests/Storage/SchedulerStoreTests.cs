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
public abstract class SchedulerStoreTests<TRedis>(TRedis redis) : IClassFixture<TRedis>, IAsyncLifetime
    where TRedis : class, ITestRedis
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider clock = new(Start);
    private readonly TaskManagerOptions options = new();
    private TestStore store = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        store = TestStore.Create(redis.Connection, "{sched}:", clock, options);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task DeadlineSweep_TimesOutAnAttempt_RetryingWhileAttemptsRemain_ThenTimedOut()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync(timeout: 2, maxAttempts: 2);
        await store.Queue.LeaseAsync(worker, 1);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty((await store.Scheduler.SweepDeadlinesAsync(100)).Select(m => (m.TaskId, m.Status)));

        clock.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Equal([(task.Id, TaskState.Scheduled)], (await store.Scheduler.SweepDeadlinesAsync(100)).Select(m => (m.TaskId, m.Status)));
        Assert.True(await store.Scheduler.RequeueAsync(task.Id, 1));
        await store.Queue.LeaseAsync(worker, 1);
        clock.Advance(TimeSpan.FromSeconds(3));

        Assert.Equal([(task.Id, TaskState.TimedOut)], (await store.Scheduler.SweepDeadlinesAsync(100)).Select(m => (m.TaskId, m.Status)));
        var got = (await store.Inspector.GetAsync(task.Id))!;
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
        var lostLease = (await store.Queue.LeaseAsync(silent, 1)).Tasks.Single();
        var keptLease = (await store.Queue.LeaseAsync(alive, 1)).Tasks.Single();

        clock.Advance(TimeSpan.FromSeconds(options.LeaseTtlSeconds - 1));
        await store.Workers.HeartbeatAsync(alive, NoGpus, [(keptLease.TaskId, keptLease.LeaseToken)]);
        clock.Advance(TimeSpan.FromSeconds(2));
        var moved = (await store.Scheduler.SweepLeasesAsync(100)).Select(m => (m.TaskId, m.Status));

        Assert.Equal([(lost.Id, TaskState.Queued)], moved);
        Assert.Equal(TaskState.Running, (await store.Inspector.GetAsync(kept.Id))!.Status);
        // The silent worker's late report is refused; the next lease is attempt 2.
        Assert.Equal(StoreError.StaleLease, (await store.Queue.CompleteAsync(lost.Id, lostLease.LeaseToken, "{}")).Error);
        Assert.Equal(2, (await store.Queue.LeaseAsync(alive, 1)).Tasks.Single().Attempt);
    }

    [Fact]
    public async Task LeaseSweep_EndsACancelingTaskOfAGoneWorker_Canceled()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        await store.Queue.LeaseAsync(worker, 1);
        await store.Queue.CancelAsync(task.Id);

        clock.Advance(TimeSpan.FromSeconds(options.LeaseTtlSeconds + 1));

        Assert.Equal([(task.Id, TaskState.Canceled)], (await store.Scheduler.SweepLeasesAsync(100)).Select(m => (m.TaskId, m.Status)));
    }

    [Fact]
    public async Task CancelOfAScheduledTask_EndsItAtOnce_AndAsksForItsRetryJobToBeDeleted()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.FailAsync(task.Id, leased.LeaseToken, """{"code":"oom","message":"x"}""", retryable: true, FailureKind.Error);
        Assert.True(await store.Scheduler.AttachRetryJobAsync(task.Id, 1, "job-17"));
        await store.Scheduler.TakeOutboxAsync(10);

        var outcome = await store.Queue.CancelAsync(task.Id);

        Assert.Equal(TaskState.Canceled, outcome.Status);
        var entry = Assert.Single(await store.Scheduler.TakeOutboxAsync(10));
        Assert.True(entry.Delete);
        Assert.Equal("job-17", await store.Scheduler.GetRetryJobAsync(task.Id));
        // The retry job, should it still run, finds nothing to do.
        Assert.False(await store.Scheduler.RequeueAsync(task.Id, 1));
        Assert.Equal(TaskState.Canceled, (await store.Inspector.GetAsync(task.Id))!.Status);
    }

    [Fact]
    public async Task OverdueRetrySweep_QueuesARetryWhoseJobWasLost()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.FailAsync(task.Id, leased.LeaseToken, """{"code":"oom","message":"x"}""", retryable: true, FailureKind.Error);

        clock.Advance(TimeSpan.FromSeconds(3));
        Assert.Empty(await store.Scheduler.SweepOverdueRetriesAsync(100));
        clock.Advance(TimeSpan.FromSeconds(options.RetryGraceSeconds));

        Assert.Equal([task.Id], await store.Scheduler.SweepOverdueRetriesAsync(100));
        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(task.Id))!.Status);
    }

    [Fact]
    public async Task RetentionSweep_RemovesFinalTasksPastRetention_AndKeepsTheRest()
    {
        var worker = await RegisterAsync();
        var old = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.CompleteAsync(old.Id, leased.LeaseToken, "{}");
        clock.Advance(TimeSpan.FromDays(options.RetentionDays) - TimeSpan.FromMinutes(1));
        var recent = await SubmitAsync();
        await store.Queue.CancelAsync(recent.Id);
        var waiting = await SubmitAsync();
        Assert.Equal(0, await store.Scheduler.SweepRetentionAsync(100));

        clock.Advance(TimeSpan.FromMinutes(2));

        Assert.Equal(1, await store.Scheduler.SweepRetentionAsync(100));
        Assert.Null(await store.Inspector.GetAsync(old.Id));
        Assert.NotNull(await store.Inspector.GetAsync(recent.Id));
        Assert.NotNull(await store.Inspector.GetAsync(waiting.Id));
        var listed = await store.Inspector.ListAsync(new TaskQuery(TaskState.All, TaskTypes.All, 100, null));
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
        await store.Queue.LeaseAsync(worker, 50);
        clock.Advance(TimeSpan.FromSeconds(2));

        var sweeps = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => store.Scheduler.SweepDeadlinesAsync(10)));
        var handled = sweeps.SelectMany(s => s).Select(m => m.TaskId).ToList();
        while (await store.Scheduler.SweepDeadlinesAsync(100) is { Count: > 0 } more)
        {
            handled.AddRange(more.Select(m => m.TaskId));
        }

        Assert.Equal(50, handled.Count);
        Assert.Equal(50, handled.Distinct().Count());
        Assert.Equal(50, (await store.Scheduler.TakeOutboxAsync(1000)).Count);
    }

    [Fact]
    public async Task DeadWorkerSweep_ForgetsWorkersSilentPastTheRetention_AndKeepsLiveOnes()
    {
        var gone = await RegisterAsync();
        clock.Advance(TimeSpan.FromMinutes(options.DeadWorkerRetentionMinutes - 1));
        var live = await RegisterAsync();
        clock.Advance(TimeSpan.FromMinutes(2));

        Assert.Equal(1, await store.Scheduler.SweepDeadWorkersAsync(100));

        Assert.Equal([live], (await store.Workers.ListWorkersAsync(100)).Select(w => w.Id));
        Assert.Null(await store.Workers.HeartbeatAsync(gone, NoGpus, []));
    }

    [Fact]
    public async Task AWorkerForgottenWhileItRanATask_IsNotBroughtBackByItsLateResult()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        clock.Advance(TimeSpan.FromMinutes(options.DeadWorkerRetentionMinutes + 1));
        Assert.Equal(1, await store.Scheduler.SweepDeadWorkersAsync(100));

        // Its lease is long gone by now, but a report may still arrive before the lease sweep.
        var outcome = await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, "{}");

        Assert.True(outcome.Ok);
        Assert.Empty(await store.Workers.ListWorkersAsync(100));
        Assert.False(await redis.Db.KeyExistsAsync(store.Keys.Worker(worker)));
    }

    [Fact]
    public async Task EventsOfARetriedAttempt_AreToldApartFromTheFailedOnes()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var first = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.ReportProgressAsync(task.Id, first.LeaseToken, 0.5, "half", ["a", "b"], ["first try"]);
        await store.Queue.FailAsync(task.Id, first.LeaseToken, """{"code":"oom","message":"x"}""", retryable: true, FailureKind.Error);
        await store.Scheduler.RequeueAsync(task.Id, 1);
        var second = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.ReportProgressAsync(task.Id, second.LeaseToken, null, null, ["c"]);

        var events = await store.Inspector.ReadEventsAsync(task.Id, null, 100);

        Assert.Equal(
            ["status 0 queued", "status 1 running", "progress 1", "chunk 1 1 a", "chunk 1 2 b", "log 1", "status 1 scheduled",
             "status 1 queued", "status 2 running", "chunk 2 1 c"],
            events.Select(Describe));
        var afterFirstTwo = await store.Inspector.ReadEventsAsync(task.Id, events[1].Id, 100);
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

    [Fact]
    public async Task StartDeadlineSweep_ExpiresTasksThatDidNotStartInTime_AndLeavesThoseThatDid()
    {
        var worker = await RegisterAsync();
        var waiting = await SubmitAsync(startDeadline: 2);
        var started = await SubmitAsync(startDeadline: 2);
        var noDeadline = await SubmitAsync();
        // Both start in time; `waiting` is handed back by its worker, and waits again.
        var leased = (await store.Queue.LeaseAsync(worker, 2)).Tasks;
        Assert.Equal([waiting.Id, started.Id], leased.Select(t => t.TaskId));
        await store.Queue.FailAsync(waiting.Id, leased[0].LeaseToken, """{"code":"x","message":"x"}""", retryable: true, FailureKind.HandedBack);
        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(waiting.Id))!.Status);

        clock.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Empty(await store.Scheduler.SweepStartDeadlinesAsync(100));
        clock.Advance(TimeSpan.FromSeconds(1));
        var expired = await store.Scheduler.SweepStartDeadlinesAsync(100);

        // Handed back, `waiting` was queued again: past its deadline it expires. `started` runs on.
        Assert.Equal([(waiting.Id, TaskState.Expired)], expired.Select(m => (m.TaskId, m.Status)));
        var got = (await store.Inspector.GetAsync(waiting.Id))!;
        Assert.Equal(TaskState.Expired, got.Status);
        Assert.Equal("deadline_exceeded", JsonDocument.Parse(got.ErrorJson!).RootElement.GetProperty("code").GetString());
        Assert.NotNull(got.CompletedAt);
        Assert.Equal(TaskState.Running, (await store.Inspector.GetAsync(started.Id))!.Status);
        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(noDeadline.Id))!.Status);
        // It never runs: the next lease gets the task without a deadline, then nothing.
        Assert.Equal(noDeadline.Id, (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single().TaskId);
        Assert.Empty((await store.Queue.LeaseAsync(worker, 1)).Tasks);
        Assert.Empty(await store.Scheduler.SweepStartDeadlinesAsync(100));
        var events = await store.Inspector.ReadEventsAsync(waiting.Id, null, 100);
        Assert.Equal("""{"status":"expired"}""", events[^1].DataJson);
    }

    [Fact]
    public async Task StartDeadlineSweep_ExpiresATaskWaitingForItsRetry_AndDropsTheRetryJob()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync(startDeadline: 5);
        var lease = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.FailAsync(task.Id, lease.LeaseToken, """{"code":"x","message":"x"}""", retryable: true, FailureKind.Error);
        Assert.Equal(TaskState.Scheduled, (await store.Inspector.GetAsync(task.Id))!.Status);
        await store.Scheduler.TakeOutboxAsync(100);

        clock.Advance(TimeSpan.FromSeconds(6));
        var expired = await store.Scheduler.SweepStartDeadlinesAsync(100);

        Assert.Equal([(task.Id, TaskState.Expired)], expired.Select(m => (m.TaskId, m.Status)));
        Assert.Contains(await store.Scheduler.TakeOutboxAsync(100), e => e.Delete && e.TaskId == task.Id);
        Assert.False(await store.Scheduler.RequeueAsync(task.Id, 1));
        Assert.Equal(TaskState.Expired, (await store.Inspector.GetAsync(task.Id))!.Status);
    }

    [Fact]
    public async Task Retry_RunsAFailedTaskAgain_WithAFreshBudget_AndItsHistoryKept()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync(maxAttempts: 1);
        var first = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.FailAsync(task.Id, first.LeaseToken, """{"code":"oom","message":"x"}""", retryable: true, FailureKind.Error);
        Assert.Equal(TaskState.Failed, (await store.Inspector.GetAsync(task.Id))!.Status);
        // Another tenant sees no such task; a task that is not final cannot be retried.
        Assert.Equal(StoreError.NotFound, (await store.Queue.RetryAsync(task.Id, "someone-else")).Error);

        var outcome = await store.Queue.RetryAsync(task.Id, Tenants.Default);

        Assert.True(outcome.Ok);
        var queued = (await store.Inspector.GetAsync(task.Id))!;
        Assert.Equal(TaskState.Queued, queued.Status);
        Assert.Null(queued.ErrorJson);
        Assert.Null(queued.CompletedAt);
        Assert.Equal(2, queued.MaxAttempts);
        Assert.Equal(StoreError.Conflict, (await store.Queue.RetryAsync(task.Id, Tenants.Default)).Error);
        var second = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        Assert.Equal(2, second.Attempt);
        Assert.True((await store.Queue.CompleteAsync(task.Id, second.LeaseToken, """{"text":"ok"}""")).Ok);
        var done = (await store.Inspector.GetAsync(task.Id))!;
        Assert.Equal(TaskState.Succeeded, done.Status);
        Assert.Equal(["failed", "succeeded"], done.AttemptsJson!.Select(a => JsonDocument.Parse(a).RootElement.GetProperty("outcome").GetString()));
        Assert.Equal(StoreError.Conflict, (await store.Queue.RetryAsync(task.Id)).Error);
        // Its events go on past the first final status.
        var statuses = (await store.Inspector.ReadEventsAsync(task.Id, null, 100)).Where(e => e.Kind == "status")
            .Select(e => JsonDocument.Parse(e.DataJson).RootElement.GetProperty("status").GetString());
        Assert.Equal(["queued", "running", "failed", "queued", "running", "succeeded"], statuses);
    }

    [Fact]
    public async Task RetryOfAnExpiredTask_CountsItsStartDeadlineFromTheRetry()
    {
        var task = await SubmitAsync(startDeadline: 2);
        clock.Advance(TimeSpan.FromSeconds(3));
        await store.Scheduler.SweepStartDeadlinesAsync(100);
        Assert.Equal(TaskState.Expired, (await store.Inspector.GetAsync(task.Id))!.Status);

        Assert.True((await store.Queue.RetryAsync(task.Id)).Ok);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty(await store.Scheduler.SweepStartDeadlinesAsync(100));
        clock.Advance(TimeSpan.FromSeconds(1.5));

        Assert.Equal([(task.Id, TaskState.Expired)], (await store.Scheduler.SweepStartDeadlinesAsync(100)).Select(m => (m.TaskId, m.Status)));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(500)]
    public async Task BulkRetry_QueuesAgainExactlyTheEndedTasksThatMatch_InBatches(int batch)
    {
        var worker = await RegisterAsync();
        var failed = new List<string>();
        for (var i = 0; i < 7; i++)
        {
            failed.Add((await SubmitAsync(maxAttempts: 1)).Id);
        }
        var canceled = await SubmitAsync();
        var succeeded = await SubmitAsync();
        var otherType = (await store.Queue.SubmitAsync(new TaskRequest(TaskTypes.Tts, """{"text":"x"}""", null, 5, 300, 1, null, null), null)).Task!;
        // All end in the same millisecond, interleaved: the walk's cursor must neither loop nor skip.
        await store.Queue.CancelAsync(canceled.Id);
        foreach (var id in failed.Take(3))
        {
            await FailAsync(worker, id);
        }
        await store.Queue.CancelAsync(otherType.Id);
        foreach (var id in failed.Skip(3))
        {
            await FailAsync(worker, id);
        }
        var done = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.CompleteAsync(succeeded.Id, done.LeaseToken, "{}");

        var retried = await store.Queue.RetryEndedAsync(new RetryFilter([TaskState.Failed], [TaskTypes.Llm], null, DateTimeOffset.UnixEpoch), batch);

        Assert.Equal(7, retried);
        foreach (var id in failed)
        {
            Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(id))!.Status);
        }
        Assert.Equal(TaskState.Succeeded, (await store.Inspector.GetAsync(succeeded.Id))!.Status);
        Assert.Equal(TaskState.Canceled, (await store.Inspector.GetAsync(canceled.Id))!.Status);
        Assert.Equal(0, await store.Queue.RetryEndedAsync(new RetryFilter([TaskState.Failed], [TaskTypes.Llm], null, DateTimeOffset.UnixEpoch), batch));
        // Since: only what ended at or after that time; tenant: only those tenants' tasks.
        var filter = new RetryFilter([TaskState.Canceled], TaskTypes.All, ["someone-else"], DateTimeOffset.UnixEpoch);
        Assert.Equal(0, await store.Queue.RetryEndedAsync(filter, batch));
        Assert.Equal(0, await store.Queue.RetryEndedAsync(filter with { Tenants = null, Since = clock.GetUtcNow().AddSeconds(1) }, batch));
        Assert.Equal(2, await store.Queue.RetryEndedAsync(filter with { Tenants = [Tenants.Default] }, batch));
        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(otherType.Id))!.Status);
    }

    private async Task FailAsync(string worker, string id)
    {
        var lease = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        Assert.Equal(id, lease.TaskId);
        await store.Queue.FailAsync(id, lease.LeaseToken, """{"code":"x","message":"x"}""", retryable: false, FailureKind.Error);
    }

    private Task<string> RegisterAsync() =>
        store.Workers.RegisterAsync(new WorkerRegistration("w", [TaskTypes.Llm], "{}"));

    private async Task<TaskRecord> SubmitAsync(int timeout = 300, int maxAttempts = 3, int? startDeadline = null)
    {
        // One millisecond apart, so the order of ids is the order of submission.
        clock.Advance(TimeSpan.FromMilliseconds(1));
        return (await store.Queue.SubmitAsync(new TaskRequest(TaskTypes.Llm, """{"prompt":"x"}""", null, 5, timeout, maxAttempts, null, null,
            StartDeadlineSeconds: startDeadline), null)).Task!;
    }

    private static readonly WorkerState NoGpus = new("{}", 0, [], []);
}

/// <summary>The tests above on one Redis.</summary>
[Trait("Category", "Storage")]
public sealed class SchedulerStoreOnOneRedis(RedisServer redis) : SchedulerStoreTests<RedisServer>(redis);
