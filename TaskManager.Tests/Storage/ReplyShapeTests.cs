using Microsoft.Extensions.Time.Testing;
using TaskManager.Api;
using TaskManager.Api.Domain;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Storage;

/// <summary>
/// Each shape of the scripts' replies (Storage/Replies.cs), field by field: what the Lua script
/// built under a name is what the C# reads under that name. One test a shape.
/// </summary>
public abstract class ReplyShapeTests<TRedis>(TRedis redis) : IClassFixture<TRedis>, IAsyncLifetime
    where TRedis : class, ITestRedis
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private const string Trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    private readonly FakeTimeProvider clock = new(Start);
    private TestStore store = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        store = TestStore.Create(redis.Connection, "{shapes}:", clock, new TaskManagerOptions { TenantQueueCap = 3 });
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Outcome_CarriesTheNewStatus_TheType_AndTheAttemptItEnded()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        clock.Advance(TimeSpan.FromSeconds(2));

        var completed = await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, "{}");

        Assert.Equal((StoreError.None, TaskState.Succeeded, "llm"), (completed.Error, completed.Status, completed.Type));
        Assert.Equal(new EndedAttempt(1, Start, worker, Trace), completed.Attempt);
        Assert.Equal((StoreError.StaleLease, TaskState.Succeeded), await ErrorAsync(store.Queue.CompleteAsync(task.Id, leased.LeaseToken, "{}")));
        Assert.Equal((StoreError.NotFound, null), await ErrorAsync(store.Queue.CompleteAsync(TaskIds.New(Start), "x", "{}")));
        var queued = await SubmitAsync();
        Assert.Equal((StoreError.Conflict, TaskState.Queued), await ErrorAsync(store.Queue.DeleteAsync(queued.Id)));
    }

    [Fact]
    public async Task Lease_CarriesTheWorkersTypesAndModels_WhatIsLeft_AndEveryFieldOfEachTask()
    {
        var worker = await store.Workers.RegisterAsync(new WorkerRegistration("w", ["llm", "tts"], "{}", 2,
            new WorkerState("{}", 0, [], ["m1"])));
        var task = await SubmitAsync(model: "m1", metadata: """{"k":"v"}""");
        await SubmitAsync();
        clock.Advance(TimeSpan.FromMilliseconds(250));

        var lease = await store.Queue.LeaseAsync(worker, 1);

        Assert.False(lease.UnknownWorker);
        Assert.Equal(["llm", "tts"], lease.WorkerTypes);
        Assert.Equal(["m1"], lease.WorkerModels);
        Assert.True(lease.MoreQueued);
        Assert.Empty(lease.LeftForOthers);
        var t = lease.Tasks.Single();
        Assert.Equal((task.Id, "llm", "m1", Input, """{"k":"v"}"""), (t.TaskId, t.Type, t.Model, t.InputJson, t.MetadataJson));
        Assert.Equal((1, 3, 300, Trace, 250L), (t.Attempt, t.MaxAttempts, t.TimeoutSeconds, t.TraceParent, t.WaitMs));
        Assert.Equal(clock.GetUtcNow().AddSeconds(300), t.DeadlineAt);
        Assert.False(string.IsNullOrEmpty(t.LeaseToken));
        Assert.True((await store.Queue.LeaseAsync("w_" + new string('0', 32), 1)).UnknownWorker);
    }

    [Fact]
    public async Task Submit_AnswersCreatedWithTheHandedLease_Existing_Mismatch_Gone_AndQueueFull()
    {
        var worker = await RegisterAsync();
        var handed = await store.Queue.SubmitAsync(Request(), Trace, handTo: new WaitingLease(worker, 1));
        Assert.Equal(SubmitKind.Created, handed.Kind);
        Assert.Equal([handed.Id], handed.Handed!.Tasks.Select(t => t.TaskId));

        var first = await store.Queue.SubmitAsync(Request(), Trace, idempotencyKey: "k", requestHash: "h1");
        var again = await store.Queue.SubmitAsync(Request(), Trace, idempotencyKey: "k", requestHash: "h1");
        Assert.Equal((SubmitKind.Existing, first.Id, TaskState.Queued), (again.Kind, again.Task!.Id, again.Task.Status));
        Assert.Equal(SubmitKind.Mismatch, (await store.Queue.SubmitAsync(Request(), Trace, idempotencyKey: "k", requestHash: "h2")).Kind);
        Assert.Null(first.Handed);

        await store.Queue.CancelAsync(first.Id);
        await store.Queue.DeleteAsync(first.Id);
        Assert.Equal(SubmitKind.Gone, (await store.Queue.SubmitAsync(Request(), Trace, idempotencyKey: "k", requestHash: "h1")).Kind);
        await SubmitAsync();
        await SubmitAsync();
        await SubmitAsync();
        var full = await store.Queue.SubmitAsync(Request(), Trace);
        Assert.Equal((SubmitKind.QueueFull, 3L), (full.Kind, full.QueuedCount));
    }

    [Fact]
    public async Task SubmitBatch_AnswersEachTaskCreatedOrRefused_InOrder()
    {
        await SubmitAsync();

        var results = await store.Queue.SubmitBatchAsync([Request(), Request(), Request()], Trace);

        Assert.Equal([SubmitKind.Created, SubmitKind.Created, SubmitKind.QueueFull], results.Select(r => r.Kind));
        Assert.Equal(3L, results[2].QueuedCount);
    }

    [Fact]
    public async Task CompleteBatch_AnswersEachResultInOrder_ThenTheNextLease()
    {
        var worker = await RegisterAsync(capacity: 2);
        await SubmitAsync();
        await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 2)).Tasks;
        var next = await SubmitAsync();

        var (outcomes, lease) = await store.Queue.CompleteManyAsync(
            [new(leased[0].TaskId, leased[0].LeaseToken, "{}"), new(leased[1].TaskId, "stale", "{}")], worker, 1);

        Assert.Equal([StoreError.None, StoreError.StaleLease], outcomes.Select(o => o.Error));
        Assert.Equal([next.Id], lease!.Tasks.Select(t => t.TaskId));
        Assert.Null((await store.Queue.CompleteManyAsync([new(leased[1].TaskId, leased[1].LeaseToken, "{}")])).Lease);
    }

    [Fact]
    public async Task Heartbeat_AnswersTheTasksToStop_WhetherDraining_AndWhetherIdle()
    {
        var worker = await RegisterAsync();
        var idle = await store.Workers.HeartbeatAsync(worker, State, [], holdIfIdle: true);
        Assert.Empty(idle!.Stop);
        Assert.Equal((false, true), (idle.Drain, idle.Idle));

        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.CancelAsync(task.Id);
        await store.Workers.DrainAsync(worker);
        var busy = await store.Workers.HeartbeatAsync(worker, State, [(task.Id, leased.LeaseToken)], holdIfIdle: true);

        Assert.Equal([task.Id], busy!.Stop);
        Assert.Equal((true, false), (busy.Drain, busy.Idle));
        Assert.Null(await store.Workers.HeartbeatAsync("w_" + new string('0', 32), State, []));
    }

    [Fact]
    public async Task Swept_CarriesEachTasksIdStatusTypeAndTrace()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync(timeoutSeconds: 1);
        await store.Queue.LeaseAsync(worker, 1);
        clock.Advance(TimeSpan.FromSeconds(2));

        var swept = await store.Scheduler.SweepDeadlinesAsync(10);

        Assert.Equal([new SweptTask(task.Id, TaskState.Scheduled, "llm", Trace)], swept);
    }

    [Fact]
    public async Task TaskRead_CarriesTheTask_AndItsAttempts_ThePageItsTasks_AndWhetherMoreFollow()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.FailAsync(task.Id, leased.LeaseToken, """{"code":"x","message":"y"}""", true, FailureKind.Error);
        var later = await SubmitAsync();

        var read = (await store.Inspector.GetAsync(task.Id))!;
        Assert.Equal((task.Id, TaskState.Scheduled), (read.Id, read.Status));
        Assert.Single(read.AttemptsJson!);
        var page = await store.Inspector.ListAsync(new TaskQuery(TaskState.All, TaskTypes.All, 1, null));
        Assert.Equal([later.Id], page.Items.Select(t => t.Id));
        Assert.Equal(later.Id, page.NextCursor);
        var last = await store.Inspector.ListAsync(new TaskQuery(TaskState.All, TaskTypes.All, 1, page.NextCursor));
        Assert.Equal([task.Id], last.Items.Select(t => t.Id));
        Assert.Null(last.NextCursor);
    }

    [Fact]
    public async Task Events_CarryTheStoredSlice_AndWhatTheTaskImplies()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.ReportProgressAsync(task.Id, leased.LeaseToken, 0.5, "half");
        await store.Queue.CompleteAsync(task.Id, leased.LeaseToken, "{}");

        var events = await store.Inspector.ReadEventsAsync(task.Id, null, 10);

        Assert.Equal(
            [("0", "status", 0, """{"status":"queued"}"""), ("1", "status", 1, """{"status":"running"}"""),
             ("2", "progress", 1, """{"progress":0.5,"message":"half"}"""), ("3", "status", 1, """{"status":"succeeded"}""")],
            events.Select(e => (e.Id, e.Kind, e.Attempt, e.DataJson)));
    }

    [Fact]
    public async Task Artifact_CarriesItsContentType_AndItsBytes()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.PutArtifactAsync(task.Id, leased.LeaseToken, "a.bin", "application/octet-stream", [1, 2, 3]);

        var artifact = await store.Inspector.GetArtifactAsync(task.Id, "a.bin");

        Assert.Equal("application/octet-stream", artifact!.Value.ContentType);
        Assert.Equal([1, 2, 3], artifact.Value.Data);
        Assert.Null(await store.Inspector.GetArtifactAsync(task.Id, "none.bin"));
    }

    [Fact]
    public async Task Stats_CarryCounts_Depths_Paused_Totals_Minutes_AndHistograms()
    {
        var worker = await RegisterAsync();
        var done = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        clock.Advance(TimeSpan.FromMilliseconds(40));
        await store.Queue.CompleteAsync(done.Id, leased.LeaseToken, "{}");
        await SubmitAsync();
        await store.Queue.SetPausedAsync("sd", true);

        var stats = await store.Inspector.ReadStatsAsync([Tenants.Default]);

        Assert.Equal([(TaskState.Queued, "llm", 1L), (TaskState.Succeeded, "llm", 1L)], stats.Counts.Order());
        Assert.Equal(1, stats.QueueDepths["llm"]);
        Assert.Equal(["sd"], stats.Paused);
        Assert.Equal((2L, 1L), (stats.Totals["llm:submitted"], stats.Totals["llm:succeeded"]));
        Assert.Equal(15, stats.Minutes.Count);
        Assert.Equal(1, stats.Minutes[0]["llm:succeeded"]);
        Assert.Equal((1L, 40L), (stats.Run["llm"].Count, stats.Run["llm"].SumMs));
        Assert.Equal(1, stats.Wait["llm"].Count);
    }

    private const string Input = """{"prompt":"hi"}""";

    private static readonly WorkerState State = new("{}", 0, [], []);

    private static TaskRequest Request(string? model = null, string? metadata = null, int timeoutSeconds = 300) =>
        new("llm", Input, model, 5, timeoutSeconds, 3, metadata, null);

    private async Task<TaskRecord> SubmitAsync(string? model = null, string? metadata = null, int timeoutSeconds = 300) =>
        (await store.Queue.SubmitAsync(Request(model, metadata, timeoutSeconds), Trace)).Task!;

    private Task<string> RegisterAsync(int capacity = 1) =>
        store.Workers.RegisterAsync(new WorkerRegistration("w", ["llm"], "{}", capacity));

    private static async Task<(StoreError, string?)> ErrorAsync(Task<StoreOutcome> outcome)
    {
        var o = await outcome;
        return (o.Error, o.Status);
    }
}

/// <summary>The tests above on one Redis.</summary>
[Trait("Category", "Storage")]
public sealed class ReplyShapeOnOneRedis(RedisServer redis) : ReplyShapeTests<RedisServer>(redis);
