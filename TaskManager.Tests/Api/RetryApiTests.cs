using System.Net;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// Running ended tasks again over HTTP, and the fields of the task request that say when a task
/// may start and where to tell of it: what a client sees, with no worker running.
/// </summary>
[Trait("Category", "Api")]
public sealed class RetryApiTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private HttpClient Client => fixture.Api.Client;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task TheTaskObject_ShowsItsStartDeadline_AndItsWebhookEvents_WithTheDefault()
    {
        var plain = await SubmitAsync("""{"type":"llm","input":{"prompt":"x"},"start_deadline_seconds":30,"webhook":"https://h.example/hook"}""");
        var filtered = await SubmitAsync("""{"type":"llm","input":{"prompt":"x"},"webhook":"https://h.example/hook","webhook_events_filter":["completed","start"]}""");

        Assert.Equal(30, plain.GetProperty("start_deadline_seconds").GetInt32());
        Assert.Equal(["completed"], plain.GetProperty("webhook_events_filter").EnumerateArray().Select(e => e.GetString()));
        // In the order deliveries are made in.
        Assert.Equal(["start", "completed"], filtered.GetProperty("webhook_events_filter").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(JsonValueKind.Null, filtered.GetProperty("start_deadline_seconds").ValueKind);
    }

    [Fact]
    public async Task Retry_OfACanceledTask_QueuesItAgain_AndOfAQueuedOne_Is409()
    {
        var task = await SubmitAsync("""{"type":"llm","input":{"prompt":"x"}}""");
        var id = task.GetProperty("id").GetString();
        var queued = await Client.PostAsync($"/api/tasks/{id}/retry", null);
        Assert.Equal(HttpStatusCode.Conflict, queued.StatusCode);
        Assert.Equal("application/problem+json", queued.Content.Headers.ContentType?.MediaType);
        await Client.PatchAsync($"/api/tasks/{id}/cancel", null);

        var retried = await Client.PostAsync($"/api/tasks/{id}/retry", null);

        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        var body = await retried.JsonAsync();
        Assert.Equal("queued", body.GetProperty("status").GetString());
        // It never ran: its fresh budget is the three attempts it was given.
        Assert.Equal(3, body.GetProperty("max_attempts").GetInt32());
        Assert.Equal(new Uri(fixture.Api.BaseAddress, $"/api/tasks/{id}"), retried.Headers.Location);
    }

    [Fact]
    public async Task Retry_OfAnotherTenantsTask_OrOfNoTask_Is404()
    {
        var task = await SubmitAsync("""{"type":"llm","input":{"prompt":"x"}}""");
        var id = task.GetProperty("id").GetString();
        await Client.PatchAsync($"/api/tasks/{id}/cancel", null);
        using var tenantB = fixture.Api.ClientWith(Credentials.OtherClientKey);

        Assert.Equal(HttpStatusCode.NotFound, (await tenantB.PostAsync($"/api/tasks/{id}/retry", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Client.PostAsync("/api/tasks/0123456789abcdef0123456789abcdef/retry", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Client.PostAsync("/api/tasks/not-an-id/retry", null)).StatusCode);
        Assert.Equal("canceled", (await (await Client.GetAsync($"/api/tasks/{id}")).JsonAsync()).GetProperty("status").GetString());
    }

    [Fact]
    public async Task BulkRetry_IsForAdmins_AndCountsTheTasksItQueuedAgain()
    {
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await SubmitAsync("""{"type":"tts","input":{"text":"x"}}""")).GetProperty("id").GetString()!);
            await Client.PatchAsync($"/api/tasks/{ids[^1]}/cancel", null);
        }
        var llm = (await SubmitAsync("""{"type":"llm","input":{"prompt":"x"}}""")).GetProperty("id").GetString();
        await Client.PatchAsync($"/api/tasks/{llm}/cancel", null);
        using var admin = fixture.Api.ClientWith(Credentials.AdminKey);
        using var client = fixture.Api.ClientWith(Credentials.ClientKey);

        Assert.Equal(HttpStatusCode.Forbidden, (await client.PostJsonAsync("/api/admin/tasks/retry", """{"status":"canceled"}""")).StatusCode);
        // By default only failures are retried in bulk: the cancels stay.
        Assert.Equal(0, (await (await admin.PostJsonAsync("/api/admin/tasks/retry", "{}")).JsonAsync()).GetProperty("retried").GetInt64());
        var response = await admin.PostJsonAsync("/api/admin/tasks/retry", """{"status":["canceled"],"type":"tts","tenant":"tenant-a","since":"2020-01-01T00:00:00Z"}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(3, (await response.JsonAsync()).GetProperty("retried").GetInt64());
        foreach (var id in ids)
        {
            Assert.Equal("queued", (await (await Client.GetAsync($"/api/tasks/{id}")).JsonAsync()).GetProperty("status").GetString());
        }
        Assert.Equal("canceled", (await (await Client.GetAsync($"/api/tasks/{llm}")).JsonAsync()).GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("""{"status":"succeeded"}""", "status")]
    [InlineData("""{"status":"running"}""", "status")]
    [InlineData("""{"type":"video"}""", "type")]
    [InlineData("""{"since":"yesterday"}""", "since")]
    [InlineData("""{"status":[]}""", "status")]
    [InlineData("""{"colour":"red"}""", "colour")]
    [InlineData("""[1]""", "$")]
    [InlineData("""{"status":""", "$")]
    public async Task BulkRetry_WithABadFilter_Is400NamingTheField(string body, string field)
    {
        using var admin = fixture.Api.ClientWith(Credentials.AdminKey);

        var response = await admin.PostJsonAsync("/api/admin/tasks/retry", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.True((await response.JsonAsync()).GetProperty("errors").TryGetProperty(field, out _));
    }

    private async Task<JsonElement> SubmitAsync(string json)
    {
        var response = await Client.PostJsonAsync("/api/tasks", json);
        var body = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, body.ToString());
        return body;
    }
}
