using Microsoft.Extensions.Time.Testing;
using TaskManager.Api.Domain;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Storage;

/// <summary>
/// Webhooks in the store, on a fake clock: the scripts mark a task's events as they happen, and
/// the scheduler takes the deliveries to make, in order, output and logs spaced out, completed
/// last; and each delivery's record.
/// </summary>
public abstract class WebhookStoreTests<TRedis>(TRedis redis) : IClassFixture<TRedis>, IAsyncLifetime
    where TRedis : class, ITestRedis
{
    private static readonly TimeSpan Gap = TimeSpan.FromMilliseconds(500);
    private readonly FakeTimeProvider clock = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));
    private TestStore store = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        store = TestStore.Create(redis.Connection, "{hooks}:", clock);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task EachEventOfTheFilter_IsDueInOrder_OutputAndLogsSpacedOut_CompletedLast()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync(["start", "output", "logs", "completed"]);
        Assert.Empty(await TakeAsync());

        var lease = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        Assert.Equal(["start"], await TakeAsync());
        await store.Queue.ReportProgressAsync(task, lease.LeaseToken, 0.1, null, ["a", "b"], ["line"]);
        Assert.Equal(["output", "logs"], await TakeAsync());

        // More within the gap waits for it; completed waits for them.
        clock.Advance(TimeSpan.FromMilliseconds(100));
        await store.Queue.ReportProgressAsync(task, lease.LeaseToken, 0.2, null, ["c"], []);
        await store.Queue.CompleteAsync(task, lease.LeaseToken, """{"text":"abc"}""");
        Assert.Empty(await TakeAsync());
        clock.Advance(TimeSpan.FromMilliseconds(399));
        Assert.Empty(await TakeAsync());
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(["output", "completed"], await TakeAsync());
        Assert.Empty(await TakeAsync());
    }

    [Fact]
    public async Task OnlyTheFilteredEvents_AreDue_AndATaskWithoutAWebhookIsNeverDue()
    {
        var worker = await RegisterAsync();
        var completedOnly = await SubmitAsync(["completed"]);
        var silent = (await store.Queue.SubmitAsync(new TaskRequest(TaskTypes.Llm, """{"prompt":"x"}""", null, 5, 300, 3, null, null), null)).Id;

        var leases = (await store.Queue.LeaseAsync(worker, 2)).Tasks;
        foreach (var lease in leases)
        {
            await store.Queue.ReportProgressAsync(lease.TaskId, lease.LeaseToken, 0.5, null, ["a"], ["l"]);
        }
        Assert.Empty(await TakeAsync());
        foreach (var lease in leases)
        {
            await store.Queue.FailAsync(lease.TaskId, lease.LeaseToken, """{"code":"x","message":"x"}""", retryable: false, FailureKind.Error);
        }

        var due = await store.Webhooks.TakeDueAsync(100, Gap);
        Assert.Equal([(completedOnly, "completed", "https://receiver.example/hook")], due.Select(d => (d.TaskId, d.Event, d.Target)));
        Assert.DoesNotContain(due, d => d.TaskId == silent);
    }

    [Fact]
    public async Task ACanceledTask_IsCompleted_AndARetriedOneStartsAndCompletesAgain()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync(["start", "completed"]);
        await store.Queue.CancelAsync(task);
        Assert.Equal(["completed"], await TakeAsync());

        await store.Queue.RetryAsync(task);
        var lease = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        await store.Queue.CompleteAsync(task, lease.LeaseToken, "{}");

        Assert.Equal(["start", "completed"], await TakeAsync());
    }

    [Fact]
    public async Task ADelivery_KeepsItsBody_ItsJob_AndEachAttempt_AndCanBeAskedForAgain()
    {
        var task = await SubmitAsync(["completed"]);
        await store.Queue.CancelAsync(task);
        var due = (await store.Webhooks.TakeDueAsync(100, Gap)).Single();

        var id = await store.Webhooks.CreateAsync(due, """{"type":"task.completed"}""");
        await store.Webhooks.SetJobAsync(task, id, "job-1");
        await store.Webhooks.RecordAttemptAsync(id, new WebhookAttempt(clock.GetUtcNow(), 500, 12.5, "HTTP 500"), WebhookStates.Pending);
        await store.Webhooks.RecordAttemptAsync(id, new WebhookAttempt(clock.GetUtcNow(), null, 10_000, "timed out"), WebhookStates.Pending);
        await store.Webhooks.RecordAttemptAsync(id, new WebhookAttempt(clock.GetUtcNow(), 204, 3, null), WebhookStates.Delivered);

        var delivery = (await store.Webhooks.GetAsync(id))!;
        Assert.StartsWith("msg_", id, StringComparison.Ordinal);
        Assert.Equal((task, "completed", Credentials.TenantA, WebhookStates.Delivered, "job-1"), (delivery.TaskId, delivery.Event, delivery.Tenant, delivery.State, delivery.JobId));
        Assert.Equal("""{"type":"task.completed"}""", delivery.Body);
        Assert.Equal([500, null, 204], delivery.Attempts.Select(a => a.StatusCode));
        Assert.Equal([id], (await store.Webhooks.ListAsync(task)).Select(d => d.Id));
        // The next delivery of the task follows this one's job.
        await store.Queue.RetryAsync(task);
        await store.Queue.CancelAsync(task);
        Assert.Equal("job-1", (await store.Webhooks.TakeDueAsync(100, Gap)).Single().LastJob);

        Assert.False(await store.Webhooks.RequestRedeliveryAsync("0123456789abcdef0123456789abcdef", id));
        Assert.True(await store.Webhooks.RequestRedeliveryAsync(task, id));
        Assert.Equal(WebhookStates.Pending, (await store.Webhooks.GetAsync(id))!.State);
        // A second request while it is pending is refused: it is sent once.
        Assert.False(await store.Webhooks.RequestRedeliveryAsync(task, id));
        Assert.Equal([id], await store.Webhooks.TakeRedeliveriesAsync(10));
        Assert.Empty(await store.Webhooks.TakeRedeliveriesAsync(10));
    }

    private async Task<string[]> TakeAsync() => (await store.Webhooks.TakeDueAsync(100, Gap)).Select(d => d.Event).ToArray();

    private Task<string> RegisterAsync() =>
        store.Workers.RegisterAsync(new WorkerRegistration("w", [TaskTypes.Llm], "{}"));

    private async Task<string> SubmitAsync(string[] events) =>
        (await store.Queue.SubmitAsync(new TaskRequest(TaskTypes.Llm, """{"prompt":"x"}""", null, 5, 300, 3, null, "https://receiver.example/hook",
            WebhookEvents: events), null, Credentials.TenantA)).Id;
}

/// <summary>The tests above on one Redis.</summary>
[Trait("Category", "Storage")]
public sealed class WebhookStoreOnOneRedis(RedisServer redis) : WebhookStoreTests<RedisServer>(redis);
