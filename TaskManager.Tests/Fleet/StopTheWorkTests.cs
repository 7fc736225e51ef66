using System.Text.Json;
using System.Text.RegularExpressions;
using Hangfire.Redis.StackExchange;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// Timeouts and cancels stop the work on the GPU box (the executor process is killed), and
/// retries run as Hangfire jobs with growing gaps. Real processes throughout.
/// </summary>
[Trait("Category", "Fleet")]
[Collection(TimingCollection.Name)]
public sealed partial class StopTheWorkTests : IClassFixture<FleetFixture>
{
    private readonly FleetFixture fleet;

    public StopTheWorkTests(FleetFixture fleet)
    {
        this.fleet = fleet;
        if (fleet.Workers.Count == 0)
        {
            fleet.StartWorker("stop-the-work", capacity: 2);
        }
    }

    [Fact]
    public async Task HangingTask_LeavesRunningWithinTwoSecondsOfItsDeadline_AndItsProcessIsKilled()
    {
        var id = await fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"hang"},"timeout_seconds":2,"max_attempts":1,"metadata":{"sim":{"hang":true}}}""");
        var pid = await HangingProcessAsync(id);

        var task = await fleet.WaitForStatusAsync(id, s => s != "running" && s != "queued", TimeSpan.FromSeconds(30));
        var leftRunningAt = DateTimeOffset.UtcNow;
        var deadline = task.GetProperty("started_at").GetDateTimeOffset().AddSeconds(2);

        Assert.Equal("timed_out", task.GetProperty("status").GetString());
        Assert.True(leftRunningAt - deadline < TimeSpan.FromSeconds(2), $"It left running {(leftRunningAt - deadline).TotalMilliseconds:0} ms after its deadline.");
        await Wait.UntilAsync(() => !LinuxProcess.IsAlive(pid), TimeSpan.FromSeconds(FleetFixture.CancelGraceSeconds + 5),
            $"the executor process {pid} to be killed");
    }

    [Fact]
    public async Task CancelOfARunningHangingTask_EndsCanceledWithinTheGracePlusTwoSeconds_AndKillsItsProcess()
    {
        var id = await fleet.SubmitAsync("""{"type":"tts","input":{"text":"hang"},"timeout_seconds":600,"metadata":{"sim":{"hang":true}}}""");
        var pid = await HangingProcessAsync(id);

        var canceledAt = DateTimeOffset.UtcNow;
        var response = await fleet.Client.PatchAsync($"/api/tasks/{id}/cancel", null);
        Assert.Equal("canceling", (await response.JsonAsync()).GetProperty("status").GetString());
        var task = await fleet.WaitForStatusAsync(id, s => s != "canceling", TimeSpan.FromSeconds(30));
        var took = DateTimeOffset.UtcNow - canceledAt;

        Assert.Equal("canceled", task.GetProperty("status").GetString());
        Assert.True(took < TimeSpan.FromSeconds(FleetFixture.CancelGraceSeconds + 2), $"Canceling took {took.TotalMilliseconds:0} ms.");
        await Wait.UntilAsync(() => !LinuxProcess.IsAlive(pid), TimeSpan.FromSeconds(5), $"the executor process {pid} to be killed");
        // A canceled task is never retried.
        Assert.Equal("canceled", (await fleet.GetTaskAsync(id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task RetryableFailure_RunsThreeAttemptsWithGrowingGaps_ThenFails_AndTheRetriesWereHangfireJobs()
    {
        var id = await fleet.SubmitAsync("""{"type":"sd","input":{"prompt":"fail"},"max_attempts":3,"metadata":{"sim":{"fail":"retryable"}}}""");

        var task = await fleet.WaitForStatusAsync(id, s => s is "failed" or "succeeded", TimeSpan.FromSeconds(60));

        Assert.Equal("failed", task.GetProperty("status").GetString());
        Assert.Equal(3, task.GetProperty("attempt").GetInt32());
        var attempts = task.GetProperty("attempts").EnumerateArray().ToArray();
        Assert.Equal([1, 2, 3], attempts.Select(a => a.GetProperty("attempt").GetInt32()));
        Assert.All(attempts, a => Assert.Equal("failed", a.GetProperty("outcome").GetString()));
        var gap1 = attempts[1].GetProperty("started_at").GetDateTimeOffset() - attempts[0].GetProperty("ended_at").GetDateTimeOffset();
        var gap2 = attempts[2].GetProperty("started_at").GetDateTimeOffset() - attempts[1].GetProperty("ended_at").GetDateTimeOffset();
        Assert.True(gap2 > gap1, $"The gaps were {gap1.TotalMilliseconds:0} ms then {gap2.TotalMilliseconds:0} ms.");

        // Hangfire's own monitoring API shows the two retries, named after the task and attempt. A
        // retry job is marked succeeded once its method has returned, which can be after the attempt
        // it queued has already failed: wait (bounded) for the second to be marked.
        var storage = new RedisStorage(fleet.Redis.Connection, new RedisStorageOptions { Prefix = "{tm-hangfire}:" });
        var jobs = await Wait.ForAsync(() => Task.FromResult(storage.GetMonitoringApi().SucceededJobs(0, 1000)
                .Where(j => j.Value.Job?.Args is { Count: 2 } args && (string)args[0] == id)
                .Select(j => Convert.ToInt32(j.Value.Job.Args[1], System.Globalization.CultureInfo.InvariantCulture))
                .Order()
                .ToArray()),
            succeeded => succeeded.Length >= 2, TimeSpan.FromSeconds(10), "both retry jobs to be marked succeeded");
        Assert.Equal([1, 2], jobs);
    }

    /// <summary>Waits for the hanging sim task to run and report its executor's process id.</summary>
    private async Task<int> HangingProcessAsync(string id)
    {
        var running = await Wait.ForAsync(() => fleet.GetTaskAsync(id),
            t => t.GetProperty("progress_message").ValueKind == JsonValueKind.String, TimeSpan.FromSeconds(30),
            "the hanging task to report its process");
        var pid = int.Parse(ProcessId().Match(running.GetProperty("progress_message").GetString()!).Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(LinuxProcess.IsAlive(pid), $"Process {pid} should be running the task.");
        return pid;
    }

    [GeneratedRegex(@"process (\d+)")]
    private static partial Regex ProcessId();
}
