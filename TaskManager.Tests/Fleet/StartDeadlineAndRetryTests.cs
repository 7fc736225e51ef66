using System.Net;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// A task that waited too long to start, and a failed task run again: through the real API,
/// scheduler and Python worker. The fleet starts with no worker; each test starts the one it needs.
/// </summary>
[Trait("Category", "Fleet")]
public sealed class StartDeadlineAndRetryTests(FleetFixture fleet) : IClassFixture<FleetFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ATaskWithNoWorkerPastItsStartDeadline_Expires_AndNeverRunsWhenAWorkerComes()
    {
        var id = await fleet.SubmitAsync("""{"type":"sd","input":{"prompt":"too late"},"start_deadline_seconds":2}""");

        var expired = await fleet.WaitForStatusAsync(id, s => s != "queued", Timeout);

        Assert.Equal("expired", expired.GetProperty("status").GetString());
        Assert.Equal("deadline_exceeded", expired.GetProperty("error").GetProperty("code").GetString());
        var waited = expired.GetProperty("completed_at").GetDateTimeOffset() - expired.GetProperty("created_at").GetDateTimeOffset();
        Assert.True(waited >= TimeSpan.FromSeconds(2), $"expired after {waited}");
        // The event stream ends with it.
        await using (var sse = await SseClient.ConnectAsync(fleet.Client, $"/api/tasks/{id}/events"))
        {
            var events = await sse.ReadToEndAsync(Timeout);
            Assert.Equal("expired", events[^1].Data.GetProperty("status").GetString());
        }

        // A worker comes, and runs what it is given: a later task, never the expired one.
        fleet.StartWorker("late-sd");
        var later = await fleet.SubmitAsync("""{"type":"sd","input":{"prompt":"in time"},"start_deadline_seconds":60}""");
        Assert.Equal("succeeded", (await fleet.WaitForStatusAsync(later, s => s is "succeeded" or "failed" or "expired", Timeout)).GetProperty("status").GetString());
        var after = await fleet.GetTaskAsync(id);
        Assert.Equal("expired", after.GetProperty("status").GetString());
        Assert.Equal(0, after.GetProperty("attempt").GetInt32());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, after.GetProperty("started_at").ValueKind);
    }

    [Fact]
    public async Task AFailedTask_RetriedByItsClient_Succeeds_WithItsHistoryKept()
    {
        // llm only: an sd task of the other test must find no worker until that test starts one.
        fleet.StartWorker("mender", environment: new Dictionary<string, string> { ["TASKMANAGER_TASK_TYPES"] = "llm" });
        // The simulation fails the first attempt only; with one attempt allowed, the task fails.
        var id = await fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"x"},"max_attempts":1,"metadata":{"sim":{"fail":"fatal","fail_attempts":1}}}""");
        var failed = await fleet.WaitForStatusAsync(id, s => s is "failed" or "succeeded", Timeout);
        Assert.Equal("failed", failed.GetProperty("status").GetString());

        var retried = await fleet.Client.PostAsync($"/api/tasks/{id}/retry", null);
        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        var done = await fleet.WaitForStatusAsync(id, s => s is "failed" or "succeeded", Timeout);

        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal(2, done.GetProperty("attempt").GetInt32());
        var history = done.GetProperty("attempts").EnumerateArray().ToArray();
        Assert.Equal(["failed", "succeeded"], history.Select(a => a.GetProperty("outcome").GetString()));
        Assert.Equal("sim_failure", history[0].GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, done.GetProperty("error").ValueKind);
    }
}
