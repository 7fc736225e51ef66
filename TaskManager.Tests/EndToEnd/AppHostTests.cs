using System.Net;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.EndToEnd;

[Trait("Category", "EndToEnd")]
public sealed class AppHostTests(AppHostFixture app) : IClassFixture<AppHostFixture>
{
    private static readonly TimeSpan TaskTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task AppHost_BringsAllFourResourcesUp_WithoutAContainerRuntime()
    {
        foreach (var name in (string[])["redis", "api", "scheduler", "worker"])
        {
            Assert.True(app.App.ResourceNotifications.TryGetCurrentState(name, out var resource), $"No resource '{name}'.");
            Assert.Equal(KnownResourceStates.Running, resource!.Snapshot.State?.Text);
        }
        var health = await (await app.Api.GetAsync("/api/health")).JsonAsync();
        Assert.Equal("up", health.GetProperty("redis").GetProperty("status").GetString());
    }

    [Fact]
    public async Task TheGatewayResource_ServesTheTaskApiAndHealth_AtItsOwnUrl()
    {
        Assert.True(app.App.ResourceNotifications.TryGetCurrentState("gateway", out var gateway), "No resource 'gateway'.");
        Assert.Equal(KnownResourceStates.Running, gateway!.Snapshot.State?.Text);
        // The gateway's URL is its own (8080 in its launch profile), not the API's.
        Assert.NotEqual(app.Api.BaseAddress, app.Gateway.BaseAddress);

        var health = await app.Gateway.GetAsync("/api/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("up", (await health.JsonAsync()).GetProperty("redis").GetProperty("status").GetString());

        var created = await app.Gateway.PostJsonAsync("/api/tasks", """{"type":"tts","input":{"text":"through the gateway"}}""");
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var id = (await created.JsonAsync()).GetProperty("id").GetString();
        // The link the client is given leads back through the gateway.
        Assert.Equal(new Uri(app.Gateway.BaseAddress!, $"/api/tasks/{id}"), created.Headers.Location);
        var task = await Wait.ForAsync(
            async () => await (await app.Gateway.GetAsync(created.Headers.Location)).JsonAsync(),
            t => t.GetProperty("status").GetString() == "succeeded", TaskTimeout, "the task to succeed through the gateway");
        Assert.Equal(id, task.GetProperty("id").GetString());
        var listed = await (await app.Gateway.GetAsync("/api/tasks?limit=100")).JsonAsync();
        Assert.Contains(listed.GetProperty("items").EnumerateArray(), t => t.GetProperty("id").GetString() == id);
    }

    [Fact]
    public async Task TheWebResource_ServesItsSignInPage_AndSignsInWithAKeyTheApiKnows()
    {
        var cookies = new CookieContainer();
        using var web = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false })
        {
            BaseAddress = app.App.GetEndpoint("web", "http"),
        };
        var home = await web.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, home.StatusCode);
        var signIn = await web.GetStringAsync(home.Headers.Location);
        Assert.Contains("API key", signIn, StringComparison.Ordinal);

        // The console asks the API, found by service discovery, whether it knows the key.
        var token = System.Text.RegularExpressions.Regex.Match(signIn, "name=\"__RequestVerificationToken\" value=\"([^\"]+)\"").Groups[1].Value;
        var posted = await web.PostAsync(home.Headers.Location, new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["_handler"] = "signin",
            ["__RequestVerificationToken"] = token,
            ["Input.Key"] = Credentials.ClientKey,
        }));
        Assert.Equal(HttpStatusCode.Redirect, posted.StatusCode);
        var overview = await web.GetAsync(posted.Headers.Location);
        Assert.Equal(HttpStatusCode.OK, overview.StatusCode);
        Assert.Contains("Overview", await overview.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LlmTask_IsAccepted_ThenSucceedsWithTheWorkersOutput()
    {
        var response = await app.Api.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"hello"}}""");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var location = response.Headers.Location;
        Assert.NotNull(location);
        var first = await (await app.Api.GetAsync(location)).JsonAsync();
        Assert.Contains(first.GetProperty("status").GetString(), (string[])["queued", "running", "succeeded"]);

        var task = await Wait.ForAsync(
            async () => await (await app.Api.GetAsync(location)).JsonAsync(),
            t => t.GetProperty("status").GetString() is "succeeded" or "failed" or "timed_out" or "canceled",
            TaskTimeout, "the llm task to finish");

        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        Assert.False(string.IsNullOrEmpty(task.GetProperty("output").GetProperty("text").GetString()));
        Assert.StartsWith("w_", task.GetProperty("worker_id").GetString());
        var started = task.GetProperty("started_at").GetDateTimeOffset();
        var completed = task.GetProperty("completed_at").GetDateTimeOffset();
        Assert.True(completed >= started);
        Assert.True(task.GetProperty("metrics").GetProperty("wait_ms").GetInt64() >= 0);
        Assert.True(task.GetProperty("metrics").GetProperty("run_ms").GetInt64() >= 0);
    }

    [Fact]
    public async Task DashboardCommands_PauseAndResumeAQueue()
    {
        var commands = app.App.Services.GetRequiredService<ResourceCommandService>();

        var paused = await commands.ExecuteCommandAsync("api", "pause-sd");
        Assert.True(paused.Success, paused.Message);
        var stats = await (await app.Api.GetAsync("/api/tasks/stats/metrics")).JsonAsync();
        Assert.True(stats.GetProperty("queues").GetProperty("sd").GetProperty("paused").GetBoolean());

        var resumed = await commands.ExecuteCommandAsync("api", "resume-sd");
        Assert.True(resumed.Success, resumed.Message);
        stats = await (await app.Api.GetAsync("/api/tasks/stats/metrics")).JsonAsync();
        Assert.False(stats.GetProperty("queues").GetProperty("sd").GetProperty("paused").GetBoolean());
    }

    [Theory]
    [InlineData("""{"type":"llm","input":{"messages":[{"role":"user","content":"Say hi"}],"max_tokens":16},"metadata":{"sim":{"chunks":3}}}""", "text")]
    [InlineData("""{"type":"sd","input":{"prompt":"a lighthouse at dusk","width":256,"height":256,"steps":4}}""", "images")]
    [InlineData("""{"type":"tts","input":{"text":"Hello from TaskManager."}}""", "audio")]
    [InlineData("""{"type":"image_to_text","input":{"image":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}""", "text")]
    public async Task EachTaskType_SucceedsThroughThePythonWorker(string request, string outputField)
    {
        var created = await (await app.Api.PostJsonAsync("/api/tasks", request)).JsonAsync();
        var id = created.GetProperty("id").GetString();

        var task = await Wait.ForAsync(
            async () => await (await app.Api.GetAsync($"/api/tasks/{id}")).JsonAsync(),
            t => t.GetProperty("status").GetString() is "succeeded" or "failed" or "timed_out" or "canceled",
            TaskTimeout, $"task {id} to finish");

        Assert.True(task.GetProperty("status").GetString() == "succeeded", task.ToString());
        Assert.True(task.GetProperty("output").TryGetProperty(outputField, out var value) && value.ValueKind != JsonValueKind.Null,
            $"The output has no '{outputField}': {task.GetProperty("output")}");
    }
}
