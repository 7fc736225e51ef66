using System.Diagnostics;
using System.Net;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// <c>Prefer: wait=N</c> with a real worker: a submission or a read answers when the task ends
/// (200 with the final task, within about a second of its end) or after N seconds (the usual
/// answer), and says so with <c>Preference-Applied</c>.
/// </summary>
[Trait("Category", "Fleet")]
[Collection(TimingCollection.Name)]
public sealed class PreferWaitTests : IClassFixture<FleetFixture>
{
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(1);
    private readonly FleetFixture fleet;

    public PreferWaitTests(FleetFixture fleet)
    {
        this.fleet = fleet;
        if (fleet.Workers.Count == 0)
        {
            // Room for a long task beside the short ones.
            fleet.StartWorker("prefer-wait", capacity: 3);
        }
    }

    private static string Task(int durationMs) =>
        """{"type":"tts","input":{"text":"wait for me"},"metadata":{"sim":{"duration_ms":""" + durationMs + "}}}";

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string prefer, string? body = null, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.TryAddWithoutValidation("Prefer", prefer);
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        if (body is not null)
        {
            request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        }
        return await fleet.Client.SendAsync(request);
    }

    private static string? Applied(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Preference-Applied", out var values) ? string.Join(",", values) : null;

    [Fact]
    public async Task Submit_WaitFive_OnAOneSecondTask_Answers200WithTheSucceededTask_WithinASecondOfItsEnd()
    {
        await fleet.WorkerIdAsync("prefer-wait");

        var response = await SendAsync(HttpMethod.Post, "/api/tasks", "respond-async, wait=5", Task(1000));
        var arrived = DateTimeOffset.UtcNow;

        var task = await response.JsonAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        Assert.Equal("wait=5", Applied(response));
        Assert.EndsWith($"/api/tasks/{task.GetProperty("id").GetString()}", response.Headers.Location?.OriginalString, StringComparison.Ordinal);
        var completedAt = task.GetProperty("completed_at").GetDateTimeOffset();
        Assert.True(arrived - completedAt < Slack, $"The answer came {(arrived - completedAt).TotalMilliseconds:0} ms after the task ended.");
    }

    [Fact]
    public async Task Submit_WaitFive_OnATenSecondTask_Answers202AfterFiveSeconds_WithTheTaskUnfinished()
    {
        await fleet.WorkerIdAsync("prefer-wait");

        var clock = Stopwatch.StartNew();
        var response = await SendAsync(HttpMethod.Post, "/api/tasks", "wait=5", Task(10_000));
        var took = clock.Elapsed;

        var task = await response.JsonAsync();
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Contains(task.GetProperty("status").GetString(), new[] { "queued", "running" });
        Assert.Equal("wait=5", Applied(response));
        Assert.NotNull(response.Headers.Location);
        Assert.True(took >= TimeSpan.FromSeconds(5) && took < TimeSpan.FromSeconds(8), $"It answered after {took.TotalMilliseconds:0} ms.");
        // Free the worker's slot for the other tests.
        await fleet.Client.PatchAsync($"/api/tasks/{task.GetProperty("id").GetString()}/cancel", null);
    }

    [Fact]
    public async Task Get_WaitTen_OnARunningTask_Answers200WithTheFinalTask_WhenItEnds()
    {
        var id = await fleet.SubmitAsync(Task(1500));
        await fleet.WaitForStatusAsync(id, s => s == "running", TimeSpan.FromSeconds(30));

        var response = await SendAsync(HttpMethod.Get, $"/api/tasks/{id}", "wait=10");
        var arrived = DateTimeOffset.UtcNow;

        var task = await response.JsonAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        Assert.Equal("wait=10", Applied(response));
        Assert.Contains("Prefer", response.Headers.Vary);
        var completedAt = task.GetProperty("completed_at").GetDateTimeOffset();
        Assert.True(arrived - completedAt < Slack, $"The answer came {(arrived - completedAt).TotalMilliseconds:0} ms after the task ended.");
    }

    [Fact]
    public async Task Get_WaitSixty_OnAFinalTask_AnswersAtOnce()
    {
        var id = await fleet.SubmitAsync(Task(10));
        await fleet.WaitForStatusAsync(id, s => s == "succeeded", TimeSpan.FromSeconds(30));

        var clock = Stopwatch.StartNew();
        var response = await SendAsync(HttpMethod.Get, $"/api/tasks/{id}", "wait=60");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("succeeded", (await response.JsonAsync()).GetProperty("status").GetString());
        Assert.Equal("wait=60", Applied(response));
        Assert.True(clock.Elapsed < Slack, $"It answered after {clock.Elapsed.TotalMilliseconds:0} ms.");
    }

    [Fact]
    public async Task IdempotentReplay_WithWait_WaitsOnTheTaskTheFirstSubmissionCreated()
    {
        var key = Guid.NewGuid().ToString("N");
        var first = await SendAsync(HttpMethod.Post, "/api/tasks", "respond-async", Task(1000), key);
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        var id = (await first.JsonAsync()).GetProperty("id").GetString();

        var replay = await SendAsync(HttpMethod.Post, "/api/tasks", "wait=10", Task(1000), key);

        var task = await replay.JsonAsync();
        Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
        Assert.Equal(id, task.GetProperty("id").GetString());
        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal("wait=10", Applied(replay));
    }
}
