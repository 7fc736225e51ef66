using System.Reflection;
using Hangfire;
using Hangfire.Redis.StackExchange;
using Hangfire.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using TaskManager.Api;
using TaskManager.Api.Domain;
using TaskManager.Api.Observability;
using TaskManager.Api.Scheduling;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Storage;

/// <summary>
/// The scheduler's loop, one pass at a time (<see cref="SchedulerProcess.RunOnceAsync"/>), on a
/// fake clock the tests move, against the real Redis store and a real Hangfire client on Redis (no
/// Hangfire server: the retry jobs are created, never run). Each deadline, lease and retry grace
/// is acted on by the first pass at or after it, never before; retention and dead workers are
/// swept on the first pass, then at most once a minute of the clock.
/// </summary>
public abstract class SchedulerProcessTests<TRedis>(TRedis redis) : IClassFixture<TRedis>, IAsyncLifetime
    where TRedis : class, ITestRedis
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider clock = new(Start);
    private readonly TaskManagerOptions options = new();
    private ServiceProvider services = null!;
    private FleetGauges gauges = null!;
    private TaskTelemetry telemetry = null!;
    private TestStore store = null!;
    private RedisStorage hangfire = null!;
    private SchedulerProcess scheduler = null!;

    public async Task InitializeAsync()
    {
        await redis.FlushAsync();
        store = TestStore.Create(redis.Connection, "{process}:", clock, options);
        hangfire = new RedisStorage(redis.Connection, new RedisStorageOptions { Prefix = "{process-hangfire}:" });
        services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        gauges = new FleetGauges(services, clock, NullLogger<FleetGauges>.Instance);
        telemetry = new TaskTelemetry(services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), gauges);
        scheduler = new SchedulerProcess(store.Scheduler, new BackgroundJobClient(hangfire), telemetry, clock, Options.Create(options),
            NullLogger<SchedulerProcess>.Instance);
    }

    public async Task DisposeAsync()
    {
        telemetry.Dispose();
        gauges.Dispose();
        await services.DisposeAsync();
    }

    [Fact]
    public async Task AnAttemptPastItsDeadline_IsTimedOut_ByThePassAtItsDeadline_NotBefore()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync(timeout: 2, maxAttempts: 1);
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        Assert.Equal(Start.AddSeconds(2), leased.DeadlineAt);

        clock.SetUtcNow(leased.DeadlineAt.AddMilliseconds(-1));
        await scheduler.RunOnceAsync();
        Assert.Equal(TaskState.Running, await StatusAsync(task));

        clock.SetUtcNow(leased.DeadlineAt);
        await scheduler.RunOnceAsync();
        var ended = (await store.Inspector.GetAsync(task.Id))!;
        Assert.Equal(TaskState.TimedOut, ended.Status);
        Assert.Contains("\"timeout\"", ended.ErrorJson, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ALeaseItsWorkerStoppedRenewing_IsTakenBack_ByThePassAtItsExpiry_NotBefore()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        await store.Queue.LeaseAsync(worker, 1);
        var expiry = clock.GetUtcNow().AddSeconds(options.LeaseTtlSeconds);

        clock.SetUtcNow(expiry.AddMilliseconds(-1));
        await scheduler.RunOnceAsync();
        Assert.Equal(TaskState.Running, await StatusAsync(task));

        clock.SetUtcNow(expiry);
        await scheduler.RunOnceAsync();
        Assert.Equal(TaskState.Queued, await StatusAsync(task));
        Assert.Equal(2, (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single().Attempt);
    }

    [Fact]
    public async Task AFailedAttemptsRetry_BecomesAScheduledHangfireJobNamedAfterTheTask_AndACancelDeletesIt()
    {
        var task = await FailOnceAsync();
        var retryAt = (await store.Inspector.GetAsync(task.Id))!.RetryAt!.Value;
        Assert.Empty(Monitoring.ScheduledJobs(0, 100));

        await scheduler.RunOnceAsync();

        var (jobId, scheduled) = Assert.Single(Monitoring.ScheduledJobs(0, 100));
        Assert.Equal((typeof(RetryJob), nameof(RetryJob.RunAsync)), (scheduled.Job.Type, scheduled.Job.Method.Name));
        Assert.Equal($"Retry task {task.Id} after attempt 1", DisplayName(scheduled.Job));
        // Due when the task's retry is (Hangfire keeps whole seconds).
        Assert.InRange(DateTime.SpecifyKind(scheduled.EnqueueAt, DateTimeKind.Utc), retryAt.UtcDateTime.AddSeconds(-1), retryAt.UtcDateTime.AddSeconds(1));
        // The task knows its job, for a cancel to find it.
        Assert.Equal(jobId, await store.Scheduler.GetRetryJobAsync(task.Id));

        Assert.Equal(TaskState.Canceled, (await store.Queue.CancelAsync(task.Id)).Status);
        Assert.Equal(jobId, Assert.Single(Monitoring.ScheduledJobs(0, 100)).Key);
        await scheduler.RunOnceAsync();

        Assert.Empty(Monitoring.ScheduledJobs(0, 100));
        Assert.Equal(jobId, Assert.Single(Monitoring.DeletedJobs(0, 100)).Key);
    }

    [Fact]
    public async Task ARetryCanceledBeforeThePassThatSchedulesIt_LeavesItsJobDeleted()
    {
        var task = await FailOnceAsync();
        await store.Queue.CancelAsync(task.Id);

        await scheduler.RunOnceAsync();

        Assert.Empty(Monitoring.ScheduledJobs(0, 100));
        var (_, deleted) = Assert.Single(Monitoring.DeletedJobs(0, 100));
        Assert.Equal($"Retry task {task.Id} after attempt 1", DisplayName(deleted.Job));
        Assert.Null(await store.Scheduler.GetRetryJobAsync(task.Id));
        Assert.Equal(TaskState.Canceled, await StatusAsync(task));
    }

    [Fact]
    public async Task ARetryWhoseJobDidNotRun_IsQueuedByThePassAtTheEndOfItsGrace_NotBefore()
    {
        var task = await FailOnceAsync();
        await scheduler.RunOnceAsync();
        var overdue = (await store.Inspector.GetAsync(task.Id))!.RetryAt!.Value.AddSeconds(options.RetryGraceSeconds);

        clock.SetUtcNow(overdue.AddMilliseconds(-1));
        await scheduler.RunOnceAsync();
        Assert.Equal(TaskState.Scheduled, await StatusAsync(task));

        clock.SetUtcNow(overdue);
        await scheduler.RunOnceAsync();
        Assert.Equal(TaskState.Queued, await StatusAsync(task));
    }

    [Fact]
    public async Task Retention_IsSweptOnTheFirstPass_ThenAtMostOnceAMinute()
    {
        var retention = TimeSpan.FromDays(options.RetentionDays);
        var worker = await RegisterAsync();
        var first = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        Assert.True((await store.Queue.CompleteAsync(first.Id, leased.LeaseToken, "{}")).Ok);
        clock.Advance(TimeSpan.FromSeconds(30));
        var second = await SubmitAsync();
        await store.Queue.CancelAsync(second.Id);

        // The first pass: the first task is past retention, the second 29 s short of it.
        clock.SetUtcNow(Start + retention + TimeSpan.FromSeconds(1));
        await scheduler.RunOnceAsync();
        Assert.Null(await store.Inspector.GetAsync(first.Id));
        Assert.NotNull(await store.Inspector.GetAsync(second.Id));

        // Past retention too half a minute later, but the upkeep ran less than a minute ago.
        clock.Advance(TimeSpan.FromSeconds(30));
        await scheduler.RunOnceAsync();
        Assert.NotNull(await store.Inspector.GetAsync(second.Id));

        // A minute after the first pass, the next one sweeps it.
        clock.Advance(TimeSpan.FromSeconds(30));
        await scheduler.RunOnceAsync();
        Assert.Null(await store.Inspector.GetAsync(second.Id));
    }

    [Fact]
    public async Task DeadWorkers_AreForgottenOnTheFirstPass_ThenAtMostOnceAMinute()
    {
        var forgetAfter = TimeSpan.FromMinutes(options.DeadWorkerRetentionMinutes);
        var first = await RegisterAsync();
        clock.Advance(TimeSpan.FromSeconds(30));
        var second = await RegisterAsync();
        Assert.Equal(new[] { first, second }.Order(StringComparer.Ordinal), (await WorkerIdsAsync()).Order(StringComparer.Ordinal));

        // The first pass: the first worker is silent past the retention, the second 29 s short of it.
        clock.SetUtcNow(Start + forgetAfter + TimeSpan.FromSeconds(1));
        await scheduler.RunOnceAsync();
        Assert.Equal([second], await WorkerIdsAsync());

        // Silent past the retention too half a minute later, but the upkeep ran less than a minute ago.
        clock.Advance(TimeSpan.FromSeconds(30));
        await scheduler.RunOnceAsync();
        Assert.Equal([second], await WorkerIdsAsync());

        // A minute after the first pass, the next one forgets it.
        clock.Advance(TimeSpan.FromSeconds(30));
        await scheduler.RunOnceAsync();
        Assert.Empty(await WorkerIdsAsync());
    }

    private IMonitoringApi Monitoring => hangfire.GetMonitoringApi();

    /// <summary>The job's name as the Hangfire dashboard shows it, from the method's [JobDisplayName].</summary>
    private static string DisplayName(Hangfire.Common.Job job) =>
        string.Format(System.Globalization.CultureInfo.InvariantCulture, job.Method.GetCustomAttribute<JobDisplayNameAttribute>()!.DisplayName,
            job.Args.ToArray());

    /// <summary>A task whose first attempt failed with a retryable error: scheduled, its retry in the outbox.</summary>
    private async Task<TaskRecord> FailOnceAsync()
    {
        var worker = await RegisterAsync();
        var task = await SubmitAsync();
        var leased = (await store.Queue.LeaseAsync(worker, 1)).Tasks.Single();
        var failed = await store.Queue.FailAsync(task.Id, leased.LeaseToken, """{"code":"oom","message":"x"}""", retryable: true, FailureKind.Error);
        Assert.Equal(TaskState.Scheduled, failed.Status);
        return task;
    }

    private async Task<string?> StatusAsync(TaskRecord task) => (await store.Inspector.GetAsync(task.Id))?.Status;

    private async Task<string[]> WorkerIdsAsync() => (await store.Workers.ListWorkersAsync(100)).Select(w => w.Id).ToArray();

    private Task<string> RegisterAsync() =>
        store.Workers.RegisterAsync(new WorkerRegistration("w", [TaskTypes.Llm], "{}"));

    private async Task<TaskRecord> SubmitAsync(int timeout = 300, int maxAttempts = 3) =>
        (await store.Queue.SubmitAsync(new TaskRequest(TaskTypes.Llm, """{"prompt":"x"}""", null, 5, timeout, maxAttempts, null, null), null)).Task!;
}

/// <summary>The tests above on one Redis.</summary>
[Trait("Category", "Storage")]
public sealed class SchedulerProcessOnOneRedis(RedisServer redis) : SchedulerProcessTests<RedisServer>(redis);
