using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using TaskManager.Api;
using TaskManager.Api.Domain;
using TaskManager.Api.Storage;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Storage;

/// <summary>
/// The Redis storage against a real Redis that each test starts empty, with a fake
/// clock: the state changes of the task lifecycle, leasing order, reports with stale tokens,
/// heartbeats, deletion and cursor paging.
/// </summary>
public abstract class TaskStoreTests<TRedis>(TRedis redis) : IClassFixture<TRedis>, IAsyncLifetime
    where TRedis : class, ITestRedis
{
    private const string Prefix = "{test}:";
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider clock = new(Start);
    private readonly RedisKeys keys = new(Prefix);
    private readonly TaskManagerOptions options = new();
    private TestStore store = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        store = TestStore.Create(redis.Connection, Prefix, clock, options);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    // ---- submit and get ----

    [Fact]
    public async Task ARedisThatLostTheScriptLibrary_GetsItBackOnTheNextCall()
    {
        // As after a restart without persistence: Redis has the data's keys but no functions.
        var before = await SubmitAsync();
        await redis.FlushFunctionsAsync();

        var after = await SubmitAsync();

        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(after.Id))!.Status);
        Assert.Equal(2, (await store.Queue.LeaseAsync(await RegisterAsync("llm"), 5)).Tasks.Count);
        Assert.NotNull(await store.Inspector.GetAsync(before.Id));
    }

    [Fact]
    public async Task Submit_ThenGet_ShowsTheQueuedTaskWithItsQueuePosition()
    {
        var first = await SubmitAsync(model: "tiny-llama", metadata: """{"user":"u1"}""");
        var second = await SubmitAsync();

        var got = await store.Inspector.GetAsync(second.Id);

        Assert.NotNull(got);
        Assert.Equal(second.Id, got.Id);
        Assert.Equal("llm", got.Type);
        Assert.Equal(TaskState.Queued, got.Status);
        Assert.Equal(2, got.QueuePosition);
        Assert.Equal(0, got.Attempt);
        Assert.Equal(3, got.MaxAttempts);
        Assert.Equal(300, got.TimeoutSeconds);
        Assert.Equal(Input, got.InputJson);
        Assert.Null(got.StartedAt);
        Assert.Null(got.WorkerId);
        var firstGot = await store.Inspector.GetAsync(first.Id);
        Assert.Equal(1, firstGot!.QueuePosition);
        Assert.Equal("tiny-llama", firstGot.Model);
        Assert.Equal("""{"user":"u1"}""", firstGot.MetadataJson);
    }

    [Fact]
    public async Task AQueuedTask_StoresNoFieldThatAnotherAlreadySays_AndReadsAsBefore()
    {
        var task = await SubmitAsync();
        var acme = (await store.Queue.SubmitAsync(new TaskRequest("llm", Input, null, 5, 300, 3, null, null), null, tenant: "acme")).Task!;
        var db = redis.Connection.GetDatabase();

        // The key names the id; attempt 0, the default tenant, the time it was queued (its
        // creation) and its queue score (from its priority and creation) go without saying.
        var stored = (await db.HashGetAllAsync(keys.Task(task.Id))).Select(e => e.Name.ToString()).ToHashSet();
        Assert.Empty(stored.Intersect(["id", "attempt", "tenant", "queued_at", "qs"]));
        Assert.Equal("acme", (string?)await db.HashGetAsync(keys.Task(acme.Id), "tenant"));

        var got = (await store.Inspector.GetAsync(task.Id))!;
        Assert.Equal((task.Id, 0, Tenants.Default, 1L), (got.Id, got.Attempt, got.Tenant, got.QueuePosition));
        Assert.Equal("acme", (await store.Inspector.GetAsync(acme.Id))!.Tenant);
        Assert.Contains(task.Id, (await store.Inspector.ListAsync(Query())).Items.Select(t => t.Id));
        var leased = (await store.Queue.LeaseAsync(await RegisterAsync("llm"), 1)).Tasks.Single();
        Assert.Equal((task.Id, 1), (leased.TaskId, leased.Attempt));
    }

    [Fact]
    public async Task ARetriedTask_GoesBackBehindHigherPriorities_AndAheadOfYoungerTasksOfItsOwn()
    {
        var worker = await RegisterAsync("llm");
        var retried = await SubmitAsync(priority: 5);
        var first = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        var younger = await SubmitAsync(priority: 5);
        var urgent = await SubmitAsync(priority: 9);
        var lowest = await SubmitAsync(priority: 0);
        await store.Queue.FailAsync(retried.Id, first.LeaseToken, Error("oom"), retryable: true, FailureKind.Error);

        Assert.True(await store.Scheduler.RequeueAsync(retried.Id, 1));

        Assert.Equal(2, (await store.Inspector.GetAsync(retried.Id))!.QueuePosition);
        Assert.Equal([urgent.Id, retried.Id, younger.Id, lowest.Id], (await store.Queue.LeaseAsync(worker, 4)).Tasks.Select(t => t.TaskId));
    }

    [Fact]
    public async Task Get_OfAnUnknownTask_IsNull() =>
        Assert.Null(await store.Inspector.GetAsync(Guid.CreateVersion7().ToString("N")));

    [Fact]
    public async Task Submit_StampsCreatedAtFromTheClock()
    {
        clock.SetUtcNow(Start.AddHours(3));

        var task = await SubmitAsync();

        Assert.Equal(clock.GetUtcNow(), task.CreatedAt);
        Assert.Equal(clock.GetUtcNow(), (await store.Inspector.GetAsync(task.Id))!.CreatedAt);
    }

    [Fact]
    public async Task EveryKey_CarriesTheConfiguredPrefix()
    {
        var worker = await RegisterAsync("llm");
        var done = await SubmitAsync();
        await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.CompleteAsync(leased.TaskId, leased.LeaseToken, "{}");
        await store.Queue.DeleteAsync(done.Id);

        var all = new List<string>();
        foreach (var server in redis.Primaries)
        {
            await foreach (var key in server.KeysAsync(pattern: "*"))
            {
                all.Add(key!);
            }
        }

        Assert.NotEmpty(all);
        Assert.All(all, key => Assert.StartsWith(Prefix, key, StringComparison.Ordinal));
    }

    // ---- lease ----

    [Fact]
    public async Task Lease_ReturnsHighestPriorityFirst_ThenOldest()
    {
        var worker = await RegisterAsync("llm", "sd");
        var lowOld = await SubmitAsync(priority: 1);
        var midOld = await SubmitAsync(type: "sd", priority: 5);
        var highNew = await SubmitAsync(priority: 9);
        var midNew = await SubmitAsync(priority: 5);
        var highNewest = await SubmitAsync(type: "sd", priority: 9);

        var order = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            order.Add((await store.Queue.LeaseAsync(worker, 1)).Tasks.Single().TaskId);
        }

        Assert.Equal([highNew.Id, highNewest.Id, midOld.Id, midNew.Id, lowOld.Id], order);
        Assert.Empty((await store.Queue.LeaseAsync(worker, 1)).Tasks);
    }

    [Fact]
    public async Task Lease_OfTasksSubmittedInTheSameMillisecond_IsOldestFirst()
    {
        // A burst of submissions often shares a millisecond; "then oldest" must still hold.
        var worker = await RegisterAsync("llm");
        var submitted = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            var task = await store.Queue.SubmitAsync(new TaskRequest("llm", Input, null, 5, 300, 3, null, null), traceParent: null);
            submitted.Add(task.Id);
        }

        var leased = (await store.Queue.LeaseAsync(worker, 10)).Tasks.Select(t => t.TaskId);

        Assert.Equal(submitted, leased);
    }

    [Fact]
    public async Task Lease_HandsOutOnlyTheWorkersRegisteredTypes()
    {
        var ttsWorker = await RegisterAsync("tts");
        var llm = await SubmitAsync(type: "llm", priority: 9);
        var tts = await SubmitAsync(type: "tts", priority: 0);

        var lease = await store.Queue.LeaseAsync(ttsWorker, 5);

        Assert.False(lease.UnknownWorker);
        Assert.Equal(["tts"], lease.WorkerTypes);
        Assert.Equal([tts.Id], lease.Tasks.Select(t => t.TaskId));
        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(llm.Id))!.Status);
    }

    [Fact]
    public async Task Lease_GivesAtMostMaxTasks_AndSaysWhenMoreAreQueued()
    {
        var worker = await RegisterAsync("llm");
        for (var i = 0; i < 5; i++)
        {
            await SubmitAsync();
        }

        var first = await store.Queue.LeaseAsync(worker, 3);
        var second = await store.Queue.LeaseAsync(worker, 3);

        Assert.Equal(3, first.Tasks.Count);
        Assert.True(first.MoreQueued);
        Assert.Equal(2, second.Tasks.Count);
        Assert.False(second.MoreQueued);
        Assert.Equal(5, first.Tasks.Concat(second.Tasks).Select(t => t.TaskId).Distinct().Count());
        Assert.Equal(5, first.Tasks.Concat(second.Tasks).Select(t => t.LeaseToken).Distinct().Count());
    }

    [Fact]
    public async Task Lease_StartsAnAttempt_WithDeadlineAtStartPlusTimeout()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync(timeout: 120, maxAttempts: 4, model: "tiny-llama", metadata: """{"k":1}""");
        clock.Advance(TimeSpan.FromSeconds(7));
        var leasedAt = clock.GetUtcNow();

        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();

        Assert.Equal(task.Id, leased.TaskId);
        Assert.Equal("llm", leased.Type);
        Assert.Equal(1, leased.Attempt);
        Assert.Equal(4, leased.MaxAttempts);
        Assert.Equal(120, leased.TimeoutSeconds);
        Assert.Equal(leasedAt.AddSeconds(120), leased.DeadlineAt);
        Assert.Equal(Input, leased.InputJson);
        Assert.Equal("tiny-llama", leased.Model);
        Assert.Equal("""{"k":1}""", leased.MetadataJson);
        Assert.False(string.IsNullOrEmpty(leased.LeaseToken));
        var got = await store.Inspector.GetAsync(task.Id);
        Assert.Equal(TaskState.Running, got!.Status);
        Assert.Equal(1, got.Attempt);
        Assert.Equal(worker, got.WorkerId);
        Assert.Equal(leasedAt, got.StartedAt);
        Assert.Null(got.QueuePosition);
    }

    [Fact]
    public async Task Lease_ForAnUnknownWorker_SaysSo()
    {
        await SubmitAsync();

        var lease = await store.Queue.LeaseAsync("w_" + Guid.NewGuid().ToString("N"), 1);

        Assert.True(lease.UnknownWorker);
        Assert.Empty(lease.Tasks);
    }

    // ---- complete ----

    [Fact]
    public async Task Complete_WithTheCurrentToken_Succeeds_AndStoresTheOutput()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();

        var outcome = await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, """{"text":"hi"}""");

        Assert.True(outcome.Ok);
        Assert.Equal(TaskState.Succeeded, outcome.Status);
        var got = await store.Inspector.GetAsync(task.Id);
        Assert.Equal(TaskState.Succeeded, got!.Status);
        Assert.Equal("""{"text":"hi"}""", got.OutputJson);
        Assert.Equal(1.0, got.Progress);
        Assert.NotNull(got.CompletedAt);
    }

    [Fact]
    public async Task Complete_WithAWrongToken_IsStaleLease_AndChangesNothing()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        var before = await store.Inspector.GetAsync(task.Id);

        var outcome = await store.Queue.CompleteAsync(task.Id, leased.LeaseToken + "x", """{"text":"forged"}""");

        Assert.Equal(StoreError.StaleLease, outcome.Error);
        Assert.Equal(TaskState.Running, outcome.Status);
        AssertSameTask(before, await store.Inspector.GetAsync(task.Id));
    }

    [Fact]
    public async Task Complete_WithTheTokenOfAnEarlierAttempt_IsStaleLease_AndChangesNothing()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var first = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        Assert.Equal(TaskState.Scheduled, (await store.Queue.FailAsync(task.Id, first.LeaseToken, Error("oom"), retryable: true, FailureKind.Error)).Status);
        Assert.True(await store.Scheduler.RequeueAsync(task.Id, 1));
        var second = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        var before = await store.Inspector.GetAsync(task.Id);

        var outcome = await store.Queue.CompleteAsync(task.Id, first.LeaseToken, """{"text":"late"}""");

        Assert.Equal(StoreError.StaleLease, outcome.Error);
        AssertSameTask(before, await store.Inspector.GetAsync(task.Id));
        Assert.True((await store.Queue.CompleteAsync(task.Id, second.LeaseToken, "{}")).Ok);
    }

    [Fact]
    public async Task Complete_OfAFinishedTask_IsStaleLease()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, """{"n":1}""");

        var again = await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, """{"n":2}""");

        Assert.Equal(StoreError.StaleLease, again.Error);
        Assert.Equal("""{"n":1}""", (await store.Inspector.GetAsync(task.Id))!.OutputJson);
    }

    [Fact]
    public async Task Report_OnAnUnknownTask_IsNotFound()
    {
        var id = Guid.CreateVersion7().ToString("N");

        Assert.Equal(StoreError.NotFound, (await store.Queue.CompleteAsync(id, "t", "{}")).Error);
        Assert.Equal(StoreError.NotFound, (await store.Queue.FailAsync(id, "t", Error("x"), true, FailureKind.Error)).Error);
        Assert.Equal(StoreError.NotFound, (await store.Queue.ReportProgressAsync(id, "t", 0.5, null)).Error);
    }

    // ---- fail and retry ----

    [Fact]
    public async Task Fail_Retryable_WithAttemptsLeft_SchedulesARetryAfterTheBackoff_AndTheNextLeaseIsTheNextAttempt()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync(maxAttempts: 3);
        var first = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        var failedAt = clock.GetUtcNow();

        var outcome = await store.Queue.FailAsync(task.Id, first.LeaseToken, Error("oom"), retryable: true, FailureKind.Error);

        Assert.Equal(TaskState.Scheduled, outcome.Status);
        var scheduled = await store.Inspector.GetAsync(task.Id);
        Assert.Equal(TaskState.Scheduled, scheduled!.Status);
        // The default backoff after attempt 1 is 1 s, plus or minus 20 %.
        var wait = scheduled.RetryAt!.Value - failedAt;
        Assert.InRange(wait.TotalMilliseconds, 800, 1200);
        Assert.Empty((await store.Queue.LeaseAsync(worker, 1)).Tasks);
        var outbox = Assert.Single(await store.Scheduler.TakeOutboxAsync(10));
        Assert.Equal((false, task.Id, 1, scheduled.RetryAt.Value), (outbox.Delete, outbox.TaskId, outbox.Attempt, outbox.Due));
        var history = Assert.Single(scheduled.AttemptsJson!);
        Assert.Contains("\"outcome\":\"failed\"", history);

        Assert.True(await store.Scheduler.RequeueAsync(task.Id, 1));
        var queued = await store.Inspector.GetAsync(task.Id);
        Assert.Equal(TaskState.Queued, queued!.Status);
        Assert.Equal(1, queued.QueuePosition);
        Assert.Equal(1, queued.Attempt);
        Assert.Null(queued.CompletedAt);
        Assert.Equal("oom", JsonDocument.Parse(queued.ErrorJson!).RootElement.GetProperty("code").GetString());
        var second = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        Assert.Equal(task.Id, second.TaskId);
        Assert.Equal(2, second.Attempt);
        Assert.NotEqual(first.LeaseToken, second.LeaseToken);
    }

    [Fact]
    public async Task Fail_Retryable_OnTheLastAttempt_Fails()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync(maxAttempts: 2);
        var first = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.FailAsync(task.Id, first.LeaseToken, Error("oom"), retryable: true, FailureKind.Error);
        await store.Scheduler.RequeueAsync(task.Id, 1);
        var second = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();

        var outcome = await store.Queue.FailAsync(task.Id, second.LeaseToken, Error("oom"), retryable: true, FailureKind.Error);

        Assert.Equal(TaskState.Failed, outcome.Status);
        var got = await store.Inspector.GetAsync(task.Id);
        Assert.Equal(TaskState.Failed, got!.Status);
        Assert.Equal(2, got.Attempt);
        Assert.NotNull(got.CompletedAt);
        Assert.Empty((await store.Queue.LeaseAsync(worker, 1)).Tasks);
    }

    [Fact]
    public async Task Fail_NotRetryable_FailsAtOnce_EvenWithAttemptsLeft()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync(maxAttempts: 5);
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();

        var outcome = await store.Queue.FailAsync(task.Id, leased.LeaseToken, Error("invalid_input"), retryable: false, FailureKind.Error);

        Assert.Equal(TaskState.Failed, outcome.Status);
        Assert.Equal(TaskState.Failed, (await store.Inspector.GetAsync(task.Id))!.Status);
        Assert.Empty((await store.Queue.LeaseAsync(worker, 1)).Tasks);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Fail_OfKindTimeout_WhenFinal_IsTimedOut(bool retryable)
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync(maxAttempts: 1);
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();

        var outcome = await store.Queue.FailAsync(task.Id, leased.LeaseToken, Error("timeout"), retryable, FailureKind.Timeout);

        Assert.Equal(TaskState.TimedOut, outcome.Status);
        Assert.Equal(TaskState.TimedOut, (await store.Inspector.GetAsync(task.Id))!.Status);
    }

    [Fact]
    public async Task Fail_OfKindTimeout_WithAttemptsLeft_SchedulesARetry()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync(maxAttempts: 2);
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();

        var outcome = await store.Queue.FailAsync(task.Id, leased.LeaseToken, Error("timeout"), retryable: true, FailureKind.Timeout);

        Assert.Equal(TaskState.Scheduled, outcome.Status);
    }

    [Fact]
    public async Task Fail_WithAStaleToken_ChangesNothing()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        var before = await store.Inspector.GetAsync(task.Id);

        var outcome = await store.Queue.FailAsync(task.Id, "not-" + leased.LeaseToken, Error("x"), retryable: false, FailureKind.Error);

        Assert.Equal(StoreError.StaleLease, outcome.Error);
        AssertSameTask(before, await store.Inspector.GetAsync(task.Id));
    }

    // ---- progress ----

    [Fact]
    public async Task Progress_WithTheCurrentToken_IsStored_AndAStaleOneIsRefused()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();

        var ok = await store.Queue.ReportProgressAsync(task.Id, leased.LeaseToken, 0.25, "step 1/4");
        var stale = await store.Queue.ReportProgressAsync(task.Id, "old", 0.75, "forged");

        Assert.True(ok.Ok);
        Assert.Equal(TaskState.Running, ok.Status);
        Assert.Equal(StoreError.StaleLease, stale.Error);
        var got = await store.Inspector.GetAsync(task.Id);
        Assert.Equal(0.25, got!.Progress);
        Assert.Equal("step 1/4", got.ProgressMessage);
    }

    // ---- events ----

    [Fact]
    public async Task Events_StartWithQueued_ThenFollowTheTask_InOrder_AndResumeAfterAnId()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        // A queued task stores no events at all: its first event, queued, is known without them.
        Assert.False(await redis.Db.KeyExistsAsync(keys.Events(task.Id)));
        Assert.Equal([("0", "status", """{"status":"queued"}""")],
            (await store.Inspector.ReadEventsAsync(task.Id, null, 100)).Select(e => (e.Id, e.Kind, e.DataJson)));

        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.ReportProgressAsync(task.Id, leased.LeaseToken, 0.5, null, chunks: ["Hel", "lo"], logs: ["a line"]);
        await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, """{"text":"Hello"}""");

        var all = await store.Inspector.ReadEventsAsync(task.Id, null, 100);
        Assert.Equal(["0", "1", "2", "3", "4", "5", "6"], all.Select(e => e.Id));
        Assert.Equal(["status", "status", "progress", "chunk", "chunk", "log", "status"], all.Select(e => e.Kind));
        Assert.Equal([0, 1, 1, 1, 1, 1, 1], all.Select(e => e.Attempt));
        Assert.Equal("""{"status":"succeeded"}""", all[^1].DataJson);
        Assert.Equal(["4", "5"], (await store.Inspector.ReadEventsAsync(task.Id, "3", 2)).Select(e => e.Id));
        Assert.Equal(["1", "2"], (await store.Inspector.ReadEventsAsync(task.Id, null, 3)).Skip(1).Select(e => e.Id));
        Assert.Empty(await store.Inspector.ReadEventsAsync(task.Id, "6", 100));
    }

    [Fact]
    public async Task Events_ImpliedByTheTask_AreReadInPlace_AndKeepTheirIdsOnceStored()
    {
        var worker = await RegisterAsync("llm");
        var quiet = await SubmitAsync();
        var talkative = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 2)).Tasks;

        // A leased task stores no event: its 'running' is read from it, as event 1.
        Assert.Equal([("0", "queued"), ("1", "running")], await StatusesAsync(quiet.Id));
        await store.Queue.CompleteAsync(quiet.Id, leased[0].LeaseToken, "{}");
        Assert.Equal([("0", "queued"), ("1", "running"), ("2", "succeeded")], await StatusesAsync(quiet.Id));
        Assert.False(await redis.Db.KeyExistsAsync(keys.Events(quiet.Id)));
        // The attempt that succeeded is read from the task too.
        var history = Assert.Single((await store.Inspector.GetAsync(quiet.Id))!.AttemptsJson!);
        using (var attempt = JsonDocument.Parse(history))
        {
            Assert.Equal("succeeded", attempt.RootElement.GetProperty("outcome").GetString());
            Assert.Equal(worker, attempt.RootElement.GetProperty("worker_id").GetString());
            Assert.Equal(1, attempt.RootElement.GetProperty("attempt").GetInt32());
        }
        Assert.False(await redis.Db.KeyExistsAsync(keys.Attempts(quiet.Id)));

        // A follower that saw the implied 'running' as event 1 reads on from there once the
        // attempt stores its first chunk: 'running' is stored at the place it was shown.
        var seen = await store.Inspector.ReadEventsAsync(talkative.Id, null, 100);
        Assert.Equal("1", seen[^1].Id);
        await store.Queue.ReportProgressAsync(talkative.Id, leased[1].LeaseToken, null, null, chunks: ["Hi"]);
        var next = await store.Inspector.ReadEventsAsync(talkative.Id, "1", 100);
        Assert.Equal([("2", "chunk")], next.Select(e => (e.Id, e.Kind)));
        Assert.Equal("1", (await store.Inspector.ReadEventsAsync(talkative.Id, null, 100)).Single(e => e.DataJson.Contains("running")).Id);
    }

    [Fact]
    public async Task Events_OfARetriedTask_ShowEachAttemptsRunningInItsPlace_AndItsHistoryBothAttempts()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var first = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.FailAsync(task.Id, first.LeaseToken, Error("oom"), retryable: true, FailureKind.Error);
        Assert.True(await store.Scheduler.RequeueAsync(task.Id, 1));
        var second = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        var whileRunning = await store.Inspector.ReadEventsAsync(task.Id, null, 100);
        await store.Queue.CompleteAsync(task.Id, second.LeaseToken, "{}");

        var events = await store.Inspector.ReadEventsAsync(task.Id, null, 100);
        Assert.Equal(
            [("0", 0, "queued"), ("1", 1, "running"), ("2", 1, "scheduled"), ("3", 1, "queued"), ("4", 2, "running"), ("5", 2, "succeeded")],
            events.Select(e => (e.Id, e.Attempt, JsonDocument.Parse(e.DataJson).RootElement.GetProperty("status").GetString()!)));
        // A follower that read while attempt 2 ran saw its 'running' under the same id.
        Assert.Equal(("4", 2), (whileRunning[^1].Id, whileRunning[^1].Attempt));
        var outcomes = (await store.Inspector.GetAsync(task.Id))!.AttemptsJson!
            .Select(a => JsonDocument.Parse(a).RootElement.GetProperty("outcome").GetString());
        Assert.Equal(["failed", "succeeded"], outcomes);
    }

    [Fact]
    public async Task Follow_AnswersTheStatus_MarksTheTaskFollowed_AndIsNullForNoTask()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        const string unknown = "0190c0a0b0c0d0e0f000000000000000";

        Assert.Null(await store.Inspector.FollowAsync(unknown));
        Assert.False(await redis.Db.KeyExistsAsync(keys.Task(unknown)));
        Assert.Equal(TaskState.Queued, await store.Inspector.FollowAsync(task.Id));
        // Followed: from now on its events are published (lib/events.lua).
        Assert.Equal("1", (string?)await redis.Db.HashGetAsync(keys.Task(task.Id), "w"));
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        Assert.Equal(TaskState.Running, await store.Inspector.FollowAsync(task.Id));
        await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, "{}");
        Assert.Equal(TaskState.Succeeded, await store.Inspector.FollowAsync(task.Id));
    }

    private async Task<(string Id, string Status)[]> StatusesAsync(string taskId) =>
        (await store.Inspector.ReadEventsAsync(taskId, null, 100)).Where(e => e.Kind == "status")
            .Select(e => (e.Id, JsonDocument.Parse(e.DataJson).RootElement.GetProperty("status").GetString()!)).ToArray();

    // ---- cancel ----

    [Fact]
    public async Task Cancel_OfAQueuedTask_CancelsItAtOnce_AndNoLeaseGetsIt()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        clock.Advance(TimeSpan.FromSeconds(2));

        var outcome = await store.Queue.CancelAsync(task.Id);

        Assert.Equal(TaskState.Canceled, outcome.Status);
        var got = await store.Inspector.GetAsync(task.Id);
        Assert.Equal(TaskState.Canceled, got!.Status);
        Assert.Null(got.QueuePosition);
        Assert.Equal(clock.GetUtcNow(), got.CompletedAt);
        Assert.Empty((await store.Queue.LeaseAsync(worker, 1)).Tasks);
    }

    [Fact]
    public async Task Cancel_OfARunningTask_IsCanceling_UntilTheWorkersCompleteEndsItCanceled()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();

        var cancel = await store.Queue.CancelAsync(task.Id);
        Assert.Equal(TaskState.Canceling, cancel.Status);
        Assert.Equal(TaskState.Canceling, (await store.Inspector.GetAsync(task.Id))!.Status);
        Assert.True((await store.Queue.ReportProgressAsync(task.Id, leased.LeaseToken, 0.5, null)) is { Ok: true, Status: TaskState.Canceling });

        var complete = await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, """{"text":"late"}""");

        Assert.Equal(TaskState.Canceled, complete.Status);
        var got = await store.Inspector.GetAsync(task.Id);
        Assert.Equal(TaskState.Canceled, got!.Status);
        Assert.Null(got.OutputJson);
        Assert.NotNull(got.CompletedAt);
    }

    [Fact]
    public async Task Cancel_OfARunningTask_ThenTheWorkersFail_EndsCanceled_NotRetried()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync(maxAttempts: 3);
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.CancelAsync(task.Id);

        var outcome = await store.Queue.FailAsync(task.Id, leased.LeaseToken, Error("canceled"), retryable: true, FailureKind.Canceled);

        Assert.Equal(TaskState.Canceled, outcome.Status);
        Assert.Empty((await store.Queue.LeaseAsync(worker, 1)).Tasks);
    }

    [Fact]
    public async Task Cancel_Twice_WhileCanceling_StaysCanceling()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        await store.Queue.LeaseAsync(worker, 1);
        await store.Queue.CancelAsync(task.Id);

        var again = await store.Queue.CancelAsync(task.Id);

        Assert.True(again.Ok);
        Assert.Equal(TaskState.Canceling, again.Status);
    }

    [Fact]
    public async Task Cancel_OfAFinalTask_IsConflict_AndChangesNothing()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, "{}");
        var before = await store.Inspector.GetAsync(task.Id);

        var outcome = await store.Queue.CancelAsync(task.Id);

        Assert.Equal(StoreError.Conflict, outcome.Error);
        Assert.Equal(TaskState.Succeeded, outcome.Status);
        AssertSameTask(before, await store.Inspector.GetAsync(task.Id));
    }

    [Fact]
    public async Task Cancel_OfAnUnknownTask_IsNotFound() =>
        Assert.Equal(StoreError.NotFound, (await store.Queue.CancelAsync(Guid.CreateVersion7().ToString("N"))).Error);

    // ---- heartbeat ----

    [Fact]
    public async Task Heartbeat_NamesCancelingTasks_AndTasksWhoseTokenIsNoLongerCurrent()
    {
        var worker = await RegisterAsync("llm");
        var keep = await SubmitAsync();
        var canceled = await SubmitAsync();
        var retried = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 3)).Tasks.ToDictionary(t => t.TaskId, t => t.LeaseToken);
        await store.Queue.CancelAsync(canceled.Id);
        // The retried task waits for its retry: the token this worker holds is no longer current.
        await store.Queue.FailAsync(retried.Id, leased[retried.Id], Error("oom"), retryable: true, FailureKind.Error);

        var stop = (await store.Workers.HeartbeatAsync(worker, NoGpus, [(keep.Id, leased[keep.Id]), (canceled.Id, leased[canceled.Id]), (retried.Id, leased[retried.Id])]))?.Stop;

        Assert.NotNull(stop);
        Assert.Equal([canceled.Id, retried.Id], stop.Order(StringComparer.Ordinal).ToArray(), StringComparer.Ordinal);
    }

    [Fact]
    public async Task Heartbeat_NamesATaskThatFinished()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, "{}");

        var stop = (await store.Workers.HeartbeatAsync(worker, NoGpus, [(task.Id, leased.LeaseToken)]))?.Stop;

        Assert.Equal([task.Id], stop!);
    }

    [Fact]
    public async Task Heartbeat_ExtendsTheLeasesOfTheTasksItNames()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        clock.Advance(TimeSpan.FromSeconds(10));

        var stop = (await store.Workers.HeartbeatAsync(worker, NoGpus, [(task.Id, leased.LeaseToken)]))?.Stop;

        Assert.Empty(stop!);
        var expiry = await redis.Db.SortedSetScoreAsync(keys.Leases, task.Id);
        Assert.Equal(clock.GetUtcNow().AddSeconds(options.LeaseTtlSeconds).ToUnixTimeMilliseconds(), (long)expiry!.Value);
    }

    [Fact]
    public async Task Heartbeat_OfAnUnknownWorker_IsNull() =>
        Assert.Null(await store.Workers.HeartbeatAsync("w_" + Guid.NewGuid().ToString("N"), NoGpus, []));

    // ---- delete ----

    [Fact]
    public async Task Delete_OfAFinalTask_RemovesIt_FromGetAndFromTheList()
    {
        var task = await SubmitAsync();
        var other = await SubmitAsync();
        await store.Queue.CancelAsync(task.Id);

        var outcome = await store.Queue.DeleteAsync(task.Id);

        Assert.True(outcome.Ok);
        Assert.Null(await store.Inspector.GetAsync(task.Id));
        var all = await ListAllAsync(limit: 100);
        Assert.Equal([other.Id], all.Select(t => t.Id));
        Assert.Empty((await store.Inspector.ListAsync(Query(statuses: [TaskState.Canceled]))).Items);
    }

    [Fact]
    public async Task Delete_OfATaskThatIsNotFinal_IsConflict_AndKeepsIt()
    {
        var worker = await RegisterAsync("llm");
        var queued = await SubmitAsync();
        var running = await SubmitAsync(priority: 9);
        await store.Queue.LeaseAsync(worker, 1);

        var deleteQueued = await store.Queue.DeleteAsync(queued.Id);
        var deleteRunning = await store.Queue.DeleteAsync(running.Id);

        Assert.Equal(StoreError.Conflict, deleteQueued.Error);
        Assert.Equal(TaskState.Queued, deleteQueued.Status);
        Assert.Equal(StoreError.Conflict, deleteRunning.Error);
        Assert.Equal(TaskState.Running, deleteRunning.Status);
        Assert.Equal(TaskState.Queued, (await store.Inspector.GetAsync(queued.Id))!.Status);
        Assert.Equal(TaskState.Running, (await store.Inspector.GetAsync(running.Id))!.Status);
    }

    [Fact]
    public async Task Delete_OfAnUnknownTask_IsNotFound() =>
        Assert.Equal(StoreError.NotFound, (await store.Queue.DeleteAsync(Guid.CreateVersion7().ToString("N"))).Error);

    // ---- list ----

    [Fact]
    public async Task List_ShowsNewestFirst()
    {
        var ids = new List<string>();
        foreach (var type in (string[])["llm", "sd", "tts", "image_to_text", "llm"])
        {
            ids.Add((await SubmitAsync(type: type)).Id);
        }

        var page = await store.Inspector.ListAsync(Query());

        Assert.Equal(Enumerable.Reverse(ids), page.Items.Select(t => t.Id));
        Assert.Null(page.NextCursor);
    }

    [Fact]
    public async Task List_FiltersByStatusAndType_EachAsAList()
    {
        var worker = await RegisterAsync("sd");
        var llmQueued = await SubmitAsync(type: "llm");
        var llmCanceled = await SubmitAsync(type: "llm");
        var sdRunning = await SubmitAsync(type: "sd");
        var ttsQueued = await SubmitAsync(type: "tts");
        await store.Queue.CancelAsync(llmCanceled.Id);
        await store.Queue.LeaseAsync(worker, 1);

        async Task<string[]> Ids(string[] statuses, string[] types) =>
            (await store.Inspector.ListAsync(Query(statuses, types))).Items.Select(t => t.Id).ToArray();

        Assert.Equal([ttsQueued.Id, llmQueued.Id], await Ids([TaskState.Queued], TaskTypes.All.ToArray()));
        Assert.Equal([llmCanceled.Id, llmQueued.Id], await Ids(TaskState.All.ToArray(), ["llm"]));
        Assert.Equal([sdRunning.Id, llmCanceled.Id], await Ids([TaskState.Running, TaskState.Canceled], TaskTypes.All.ToArray()));
        Assert.Equal([ttsQueued.Id, sdRunning.Id], await Ids(TaskState.All.ToArray(), ["sd", "tts"]));
        Assert.Equal([llmQueued.Id], await Ids([TaskState.Queued], ["llm", "sd"]));
        Assert.Empty(await Ids([TaskState.Succeeded], TaskTypes.All.ToArray()));
    }

    [Fact]
    public async Task List_CursorPaging_ReturnsEveryTaskExactlyOnce_NewestFirst()
    {
        var worker = await RegisterAsync("sd");
        var submitted = new List<string>();
        for (var i = 0; i < 45; i++)
        {
            var task = await SubmitAsync(type: TaskTypes.All[i % 4], priority: i % 10);
            submitted.Add(task.Id);
            // Spread the tasks over several status indexes, which the listing merges.
            if (i % 7 == 0)
            {
                await store.Queue.CancelAsync(task.Id);
            }
        }
        await store.Queue.LeaseAsync(worker, 5);

        var pages = new List<TaskPage>();
        string? cursor = null;
        do
        {
            var page = await store.Inspector.ListAsync(Query(limit: 10, cursor: cursor));
            pages.Add(page);
            cursor = page.NextCursor;
            Assert.True(pages.Count <= 10, "The cursor never ended.");
        }
        while (cursor is not null);

        Assert.Equal([10, 10, 10, 10, 5], pages.Select(p => p.Items.Count));
        var listed = pages.SelectMany(p => p.Items).Select(t => t.Id).ToList();
        Assert.Equal(Enumerable.Reverse(submitted), listed);
    }

    [Fact]
    public async Task List_WhenTheLastPageIsFull_GivesNoCursorToAnEmptyPage()
    {
        for (var i = 0; i < 20; i++)
        {
            await SubmitAsync();
        }

        var first = await store.Inspector.ListAsync(Query(limit: 10));
        var second = await store.Inspector.ListAsync(Query(limit: 10, cursor: first.NextCursor));

        Assert.NotNull(first.NextCursor);
        Assert.Equal(10, second.Items.Count);
        Assert.Null(second.NextCursor);
    }

    // ---- times ----

    [Fact]
    public async Task Times_ComeFromTheClock_AndGiveWaitAndRunTimes()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        var created = clock.GetUtcNow();
        clock.Advance(TimeSpan.FromMilliseconds(1500));
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        clock.Advance(TimeSpan.FromMilliseconds(2500));

        await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, "{}");

        var got = await store.Inspector.GetAsync(task.Id);
        Assert.Equal(created, got!.CreatedAt);
        Assert.Equal(created.AddMilliseconds(1500), got.StartedAt);
        Assert.Equal(created.AddMilliseconds(4000), got.CompletedAt);
        Assert.Equal(1500, got.WaitMs);
        Assert.Equal(2500, got.RunMs);
    }

    [Fact]
    public async Task Times_OfARunningTask_HaveAWaitButNoRunTimeYet()
    {
        var worker = await RegisterAsync("llm");
        var task = await SubmitAsync();
        clock.Advance(TimeSpan.FromMilliseconds(750));
        await store.Queue.LeaseAsync(worker, 1);
        clock.Advance(TimeSpan.FromSeconds(30));

        var got = await store.Inspector.GetAsync(task.Id);

        Assert.Equal(750, got!.WaitMs);
        Assert.Null(got.RunMs);
        Assert.Null(got.CompletedAt);
    }

    // ---- helpers ----

    private const string Input = """{"prompt":"hi","max_tokens":256,"stream":false}""";

    private async Task<TaskRecord> SubmitAsync(
        string type = "llm", int priority = 5, int timeout = 300, int maxAttempts = 3, string? model = null, string? metadata = null)
    {
        // Task ids are UUIDv7s, whose order is by millisecond: one millisecond between submissions
        // gives each task its own creation time, as tasks submitted over HTTP have.
        clock.Advance(TimeSpan.FromMilliseconds(1));
        return (await store.Queue.SubmitAsync(new TaskRequest(type, Input, model, priority, timeout, maxAttempts, metadata, null), traceParent: null)).Task!;
    }

    private Task<string> RegisterAsync(params string[] types) =>
        store.Workers.RegisterAsync(new WorkerRegistration("test-worker", types, """{"capacity":1}"""));

    private static string Error(string code) => JsonSerializer.Serialize(new { code, message = "test" });

    private static TaskQuery Query(string[]? statuses = null, string[]? types = null, int limit = 20, string? cursor = null) =>
        new(statuses ?? TaskState.All.ToArray(), types ?? TaskTypes.All.ToArray(), limit, cursor);

    private async Task<List<TaskRecord>> ListAllAsync(int limit)
    {
        var all = new List<TaskRecord>();
        string? cursor = null;
        do
        {
            var page = await store.Inspector.ListAsync(Query(limit: limit, cursor: cursor));
            all.AddRange(page.Items);
            cursor = page.NextCursor;
        }
        while (cursor is not null);
        return all;
    }

    /// <summary>Records compare their lists by reference; this compares the history's contents.</summary>
    private static void AssertSameTask(TaskRecord? expected, TaskRecord? actual)
    {
        Assert.NotNull(expected);
        Assert.NotNull(actual);
        Assert.Equal(expected with { AttemptsJson = null }, actual with { AttemptsJson = null });
        Assert.Equal(expected.AttemptsJson ?? [], actual.AttemptsJson ?? []);
    }

    private static readonly WorkerState NoGpus = new("{}", 0, [], []);
}

/// <summary>The tests above on one Redis.</summary>
[Trait("Category", "Storage")]
public sealed class TaskStoreOnOneRedis(RedisServer redis) : TaskStoreTests<RedisServer>(redis);
