using System.Diagnostics;
using System.Net;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// <c>Prefer: wait=N</c> without a worker (every task stays queued): a bad wait is a 400 naming
/// the header and stores nothing, a <c>Prefer</c> without a wait changes nothing (and costs no
/// Redis call), and a waiting request polls nothing: a handful of Redis calls however long it waits.
/// </summary>
[Trait("Category", "Api")]
[Collection(TimingCollection.Name)]
public sealed class PreferWaitApiTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private const string Body = """{"type":"llm","input":{"prompt":"nobody runs this"}}""";

    private HttpClient Client => fixture.Api.Client;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, params string[] prefer)
    {
        using var request = new HttpRequestMessage(method, path);
        foreach (var header in prefer)
        {
            request.Headers.TryAddWithoutValidation("Prefer", header);
        }
        if (method == HttpMethod.Post)
        {
            request.Content = new StringContent(Body, System.Text.Encoding.UTF8, "application/json");
        }
        return await Client.SendAsync(request);
    }

    private async Task<string> SubmitAsync() =>
        (await (await Client.PostJsonAsync("/api/tasks", Body)).JsonAsync()).GetProperty("id").GetString()!;

    private async Task<long> StoredAsync() =>
        (await (await Client.GetAsync("/api/tasks?limit=100")).JsonAsync()).GetProperty("items").GetArrayLength();

    [Theory]
    [InlineData("wait=61")]
    [InlineData("wait=-1")]
    [InlineData("wait=2.5")]
    [InlineData("wait=soon")]
    [InlineData("wait")]
    [InlineData("respond-async, wait=")]
    public async Task ABadWait_Answers400NamingThePreferHeader_OnSubmitAndGet_AndStoresNothing(string prefer)
    {
        var id = await SubmitAsync();

        var submit = await SendAsync(HttpMethod.Post, "/api/tasks", prefer);
        var get = await SendAsync(HttpMethod.Get, $"/api/tasks/{id}", prefer);

        foreach (var response in new[] { submit, get })
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = await response.JsonAsync();
            Assert.Contains("whole number of seconds", problem.GetProperty("errors").GetProperty("Prefer")[0].GetString(), StringComparison.Ordinal);
            Assert.False(response.Headers.Contains("Preference-Applied"));
        }
        Assert.Equal(1, await StoredAsync());
    }

    [Theory]
    [InlineData("respond-async")]
    [InlineData("return=minimal, handling=lenient")]
    [InlineData("wait=0")]
    public async Task APreferWithoutAWait_ChangesNothing_AndASubmissionStaysOneRedisRoundTrip(string prefer)
    {
        await SubmitAsync(); // the script library is loaded
        await using var monitor = await RedisMonitor.StartAsync(fixture.Redis);

        HttpResponseMessage submit = null!;
        var commands = await monitor.ClientCommandsDuringAsync(fixture.Redis.Db, async () => submit = await SendAsync(HttpMethod.Post, "/api/tasks", prefer));
        var id = (await submit.JsonAsync()).GetProperty("id").GetString();
        var clock = Stopwatch.StartNew();
        var get = await SendAsync(HttpMethod.Get, $"/api/tasks/{id}", prefer);

        Assert.Equal(HttpStatusCode.Accepted, submit.StatusCode);
        Assert.NotNull(submit.Headers.Location);
        Assert.True(commands.Count == 1, "submit: " + string.Join("\n", commands));
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("queued", (await get.JsonAsync()).GetProperty("status").GetString());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"The GET answered after {clock.Elapsed.TotalMilliseconds:0} ms.");
        Assert.False(submit.Headers.Contains("Preference-Applied"));
        Assert.False(get.Headers.Contains("Preference-Applied"));
    }

    [Fact]
    public async Task AWaitAmongOtherPreferences_QuotedWithSpacesAndParameters_IsApplied()
    {
        var id = await SubmitAsync();

        var clock = Stopwatch.StartNew();
        var response = await SendAsync(HttpMethod.Get, $"/api/tasks/{id}", "respond-async", "WAIT = \"1\"; x=y");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("wait=1", response.Headers.GetValues("Preference-Applied").Single());
        Assert.Contains("Prefer", response.Headers.Vary);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1), $"It answered after {clock.Elapsed.TotalMilliseconds:0} ms.");
    }

    [Fact]
    public async Task WaitingOnAQueuedTask_PollsNothing_AHandfulOfRedisCallsHoweverLongItWaits()
    {
        var id = await SubmitAsync();
        await Client.GetAsync($"/api/tasks/{id}"); // the script library is loaded
        await using var monitor = await RedisMonitor.StartAsync(fixture.Redis);

        var (short_, shortTook) = await WaitOnAsync(monitor, id, 1);
        var (long_, longTook) = await WaitOnAsync(monitor, id, 3);

        Assert.True(shortTook >= TimeSpan.FromSeconds(1) && longTook >= TimeSpan.FromSeconds(3),
            $"The waits took {shortTook.TotalMilliseconds:0} and {longTook.TotalMilliseconds:0} ms.");
        // Polling every 20 ms would make 150 calls in 3 s; a wait on the task's channel makes the
        // same few (read, follow, read again) whether it lasts 1 s or 3 s.
        Assert.True(long_.Count <= 6 && long_.Count <= short_.Count + 1,
            $"1 s wait: {short_.Count} commands:\n{string.Join("\n", short_)}\n3 s wait: {long_.Count} commands:\n{string.Join("\n", long_)}");
    }

    [Fact]
    public async Task OpenApiDocument_NamesThePreferHeader_AndThe200OfAWaitedSubmission()
    {
        var paths = (await (await Client.GetAsync("/openapi/v1.json")).JsonAsync()).GetProperty("paths");

        foreach (var operation in new[] { paths.GetProperty("/api/tasks").GetProperty("post"), paths.GetProperty("/api/tasks/{id}").GetProperty("get") })
        {
            Assert.Contains(operation.GetProperty("parameters").EnumerateArray(),
                p => p.GetProperty("name").GetString() == "Prefer" && p.GetProperty("in").GetString() == "header");
            Assert.True(operation.GetProperty("responses").TryGetProperty("200", out _), operation.ToString());
        }
        Assert.True(paths.GetProperty("/api/tasks").GetProperty("post").GetProperty("responses").TryGetProperty("202", out _));
    }

    private async Task<(IReadOnlyList<string> Commands, TimeSpan Took)> WaitOnAsync(RedisMonitor monitor, string id, int seconds)
    {
        HttpResponseMessage response = null!;
        var clock = Stopwatch.StartNew();
        var commands = await monitor.ClientCommandsDuringAsync(fixture.Redis.Db, async () =>
            response = await SendAsync(HttpMethod.Get, $"/api/tasks/{id}", $"wait={seconds}"));
        var took = clock.Elapsed;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("queued", (await response.JsonAsync()).GetProperty("status").GetString());
        Assert.Equal($"wait={seconds}", response.Headers.GetValues("Preference-Applied").Single());
        return (commands, took);
    }
}
