using System.Net;
using System.Text;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Platform;

/// <summary>
/// The API as the platform's clients reach it: through a real gateway in front of it. The same
/// checks run through nginx with the documented configuration and through the repository's YARP
/// gateway: every client call, an event stream that is not held back, the body limits, the
/// refusals, and links that lead back through the gateway, also where it mounts the API under a
/// prefix.
/// </summary>
public abstract class GatewayTests<TGateway>(GatewayFixture<TGateway> fixture)
    where TGateway : ITestGateway<TGateway>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // The fixture's worker takes llm tasks only: tasks of other types stay queued.
    private const string Waiting = """{"type":"tts","input":{"text":"waits in the queue"}}""";

    private HttpClient Client => fixture.Client;

    [Fact]
    public async Task Health_AnswersThroughTheGateway()
    {
        var response = await Client.GetAsync("api/health");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("up", (await response.JsonAsync()).GetProperty("redis").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Me_AnswersThroughTheGateway()
    {
        var response = await Client.GetAsync("api/me");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Credentials.TenantA, (await response.JsonAsync()).GetProperty("tenant").GetString());
    }

    [Fact]
    public async Task CreateGetListCancelDelete_ThroughTheGateway_WithLinksThatLeadBackThroughIt()
    {
        var created = await Client.PostJsonAsync("api/tasks", Waiting);
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var task = await created.JsonAsync();
        var id = task.GetProperty("id").GetString()!;
        var self = new Uri(fixture.Gateway.Root, $"api/tasks/{id}");
        Assert.Equal(self, created.Headers.Location);
        Assert.Equal(self.ToString(), task.GetProperty("urls").GetProperty("get").GetString());

        var got = await Client.GetAsync(created.Headers.Location);
        Assert.Equal(HttpStatusCode.OK, got.StatusCode);
        Assert.Equal(id, (await got.JsonAsync()).GetProperty("id").GetString());

        foreach (var list in (string[])["api/tasks?limit=100", "api/tasks/?limit=100"])
        {
            var page = await Client.GetAsync(list);
            Assert.True(page.StatusCode == HttpStatusCode.OK, $"{list}: {(int)page.StatusCode}");
            Assert.Contains((await page.JsonAsync()).GetProperty("items").EnumerateArray(), t => t.GetProperty("id").GetString() == id);
        }

        var canceled = await Client.PatchAsync(task.GetProperty("urls").GetProperty("cancel").GetString(), null);
        Assert.Equal(HttpStatusCode.Accepted, canceled.StatusCode);
        Assert.Equal("canceled", (await canceled.JsonAsync()).GetProperty("status").GetString());

        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync(self)).StatusCode);
        var gone = await Client.GetAsync(self);
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Equal("application/problem+json", gone.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task EventStream_FirstChunkArrives_WhileTheTaskRuns_AndResumesFromLastEventId()
    {
        var created = await (await Client.PostJsonAsync("api/tasks",
            """{"type":"llm","input":{"prompt":"stream through the gateway","stream":true},"metadata":{"sim":{"chunks":20,"duration_ms":4000}}}""")).JsonAsync();
        var events = created.GetProperty("urls").GetProperty("events").GetString()!;

        SseEvent first;
        await using (var stream = await SseClient.ConnectAsync(Client, events))
        {
            first = await NextChunkAsync(stream);
        }
        // Not held back by the gateway until the end: the task still runs when the first chunk is here.
        var now = await (await Client.GetAsync(created.GetProperty("urls").GetProperty("get").GetString())).JsonAsync();
        Assert.Equal("running", now.GetProperty("status").GetString());
        Assert.Equal(1, first.Data.GetProperty("index").GetInt32());

        await using var resumed = await SseClient.ConnectAsync(Client, events, lastEventId: first.Id);
        var rest = await resumed.ReadToEndAsync(Timeout);
        Assert.Equal(Enumerable.Range(2, 19), rest.Where(e => e.Event == "chunk").Select(c => c.Data.GetProperty("index").GetInt32()));
        Assert.Equal("succeeded", rest[^1].Data.GetProperty("status").GetString());
    }

    [Fact]
    public async Task OpenAiApi_ThroughTheGateway_TheOfficialSdkCallsIt_AndAStreamIsNotHeldBack()
    {
        var sdk = OpenAi.Client(fixture.Gateway.Root);
        // The model is listed once the fixture's worker has registered.
        await Wait.UntilAsync(async () => (await sdk.GetOpenAIModelClient().GetModelsAsync()).Value.Any(m => m.Id == GatewayFixture<TGateway>.ChatModel),
            Timeout, "the worker's model to be listed through the gateway");
        var answer = (await sdk.GetChatClient(GatewayFixture<TGateway>.ChatModel).CompleteChatAsync("hello")).Value;
        Assert.False(string.IsNullOrEmpty(answer.Content[0].Text));

        using var response = await OpenAi.PostAsync(Client, "v1/chat/completions",
            $$$"""{"model":"{{{GatewayFixture<TGateway>.ChatModel}}}","messages":[{"role":"user","content":"hi"}],"max_tokens":40,"stream":true}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = response.Headers.GetValues("X-TaskManager-Task-Id").Single();
        await using var sse = await SseClient.OfAsync(response);
        // The role, then the first token: here while the task still runs (40 tokens at 10 a second).
        for (var content = false; !content;)
        {
            var e = await sse.NextRawAsync(Timeout) ?? throw new InvalidOperationException("The stream ended before its first token.");
            content = JsonDocument.Parse(e.Data).RootElement.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out _);
        }
        Assert.Equal("running", (await (await Client.GetAsync($"api/tasks/{id}")).JsonAsync()).GetProperty("status").GetString());
        var rest = await sse.ReadRawToEndAsync(Timeout);
        Assert.Equal("[DONE]", rest[^1].Data);
    }

    [Fact]
    public async Task ABodyOf1MiB_IsAccepted_ALargerOne_Is413WithAProblemDetails()
    {
        var exact = ImageTask(1024 * 1024);
        Assert.Equal(1024 * 1024, Encoding.UTF8.GetByteCount(exact));
        var accepted = await Client.PostJsonAsync("api/tasks", exact);
        Assert.True(accepted.StatusCode == HttpStatusCode.Accepted, await accepted.Content.ReadAsStringAsync());

        // Over the API's limit for a task (a few bytes, and megabytes: the gateway must not break
        // the connection while the API refuses it), and over the gateway's own limit (nginx).
        foreach (var size in (int[])[1024 * 1024 + 1, 5 * 1024 * 1024, 17 * 1024 * 1024])
        {
            var refused = await Client.PostJsonAsync("api/tasks", ImageTask(size));
            Assert.True(refused.StatusCode == HttpStatusCode.RequestEntityTooLarge, $"{size} bytes: {(int)refused.StatusCode} {await refused.Content.ReadAsStringAsync()}");
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.Equal(413, (await refused.JsonAsync()).GetProperty("status").GetInt32());
        }
    }

    [Fact]
    public async Task ATenantOverItsQueueCap_Gets429WithRetryAfter()
    {
        // Tenant B's key is used by this test alone; the fixture caps a tenant's queue.
        using var tenantB = Credentials.ClientWith(fixture.Gateway.Root, Credentials.OtherClientKey);
        HttpResponseMessage response;
        var submitted = 0;
        do
        {
            response = await tenantB.PostJsonAsync("api/tasks", Waiting);
            submitted++;
        }
        while (response.StatusCode == HttpStatusCode.Accepted && submitted <= GatewayFixture<TGateway>.TenantQueueCap);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, "no Retry-After");
        Assert.Equal(429, (await response.JsonAsync()).GetProperty("status").GetInt32());
    }

    [Theory]
    [InlineData(null, HttpStatusCode.Unauthorized)]
    [InlineData("not-a-key", HttpStatusCode.Unauthorized)]
    [InlineData(Credentials.WorkerToken, HttpStatusCode.Forbidden)]
    public async Task Refusals_PassThroughTheGateway(string? key, HttpStatusCode expected)
    {
        using var client = Credentials.ClientWith(fixture.Gateway.Root, key);

        var response = await client.PostJsonAsync("api/tasks", Waiting);

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task UnderAPrefix_LinksCarryThePrefix_AndLeadBackThroughTheGateway()
    {
        using var client = Credentials.ClientWith(fixture.Gateway.Mounted, Credentials.ClientKey);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("api/health")).StatusCode);

        var created = await client.PostJsonAsync("api/tasks", Waiting);

        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var task = await created.JsonAsync();
        var self = new Uri(fixture.Gateway.Mounted, $"api/tasks/{task.GetProperty("id").GetString()}");
        Assert.StartsWith(ITestGateway<TGateway>.Prefix + "/api/tasks/", self.AbsolutePath, StringComparison.Ordinal);
        Assert.Equal(self, created.Headers.Location);
        Assert.Equal($"{self}/events", task.GetProperty("urls").GetProperty("events").GetString());
        var got = await client.GetAsync(created.Headers.Location);
        Assert.Equal(HttpStatusCode.OK, got.StatusCode);
    }

    [Fact]
    public async Task TheHostTheClientCalled_IsInTheLinks_AndAClientCannotForgeTheScheme()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(fixture.Gateway.Root, "api/tasks"))
        {
            Content = new StringContent(Waiting, Encoding.UTF8, "application/json"),
        };
        // As a client that resolved tasks.example.test to the gateway would send it.
        request.Headers.Host = "tasks.example.test:8443";
        // The gateway states the scheme it was called with itself, whatever the client claims.
        request.Headers.Add("X-Forwarded-Proto", "https");

        var response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.JsonAsync()).GetProperty("id").GetString();
        Assert.Equal($"http://tasks.example.test:8443/api/tasks/{id}", response.Headers.Location?.ToString());
    }

    private static async Task<SseEvent> NextChunkAsync(SseClient stream)
    {
        while (await stream.NextAsync(Timeout) is { } e)
        {
            if (e.Event == "chunk")
            {
                return e;
            }
        }
        throw new InvalidOperationException("The stream ended before its first chunk.");
    }

    /// <summary>An image_to_text request of exactly <paramref name="bytes"/> bytes: a base64 image, then spaces.</summary>
    private static string ImageTask(int bytes)
    {
        const string head = "{\"type\":\"image_to_text\",\"input\":{\"image\":\"";
        const string tail = "\"}}";
        var image = (bytes - head.Length - tail.Length) / 4 * 4;
        return head + new string('A', image) + "\"}" + new string(' ', bytes - head.Length - image - tail.Length) + "}";
    }
}

/// <summary>The gateway tests through nginx.</summary>
[Trait("Category", "Platform")]
public sealed class ThroughNginxTests(GatewayFixture<NginxGateway> fixture)
    : GatewayTests<NginxGateway>(fixture), IClassFixture<GatewayFixture<NginxGateway>>;

/// <summary>The gateway tests through the YARP gateway.</summary>
[Trait("Category", "Platform")]
public sealed class ThroughYarpTests(GatewayFixture<YarpGateway> fixture)
    : GatewayTests<YarpGateway>(fixture), IClassFixture<GatewayFixture<YarpGateway>>;

/// <summary>
/// Redis, the API (a tenant's queue capped at <see cref="TenantQueueCap"/>), a sim worker that
/// takes llm tasks, and the gateway in front of the API.
/// </summary>
public sealed class GatewayFixture<TGateway> : IAsyncLifetime
    where TGateway : ITestGateway<TGateway>
{
    public const int TenantQueueCap = 20;

    /// <summary>The model the fixture's worker declares, for the OpenAI-compatible API.</summary>
    public const string ChatModel = "sim-chat";

    public RedisServer Redis { get; } = new();

    public ApiProcess Api { get; private set; } = null!;

    public WorkerProcess Worker { get; private set; } = null!;

    public TGateway Gateway { get; private set; } = default!;

    /// <summary>Tenant A's client at the gateway's root.</summary>
    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Api = await ApiProcess.StartAsync(Redis, environment: new Dictionary<string, string>
        {
            ["TaskManager__TenantQueueCap"] = TenantQueueCap.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        Worker = WorkerProcess.Start(Api.BaseAddress, new Dictionary<string, string>
        {
            ["TASKMANAGER_WORKER_NAME"] = "behind-the-gateway",
            ["TASKMANAGER_TASK_TYPES"] = "llm",
            ["TASKMANAGER_MODELS"] = ChatModel,
            // Paces the llm tasks that set no duration of their own (the OpenAI ones): 10 tokens a second.
            ["TASKMANAGER_SIM_TOKENS_PER_SECOND"] = "10",
        });
        Gateway = await TGateway.StartAsync(Api.BaseAddress);
        Client = Credentials.ClientWith(Gateway.Root, Credentials.ClientKey);
    }

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        if (Gateway is not null)
        {
            await Gateway.DisposeAsync();
        }
        if (Worker is not null)
        {
            await Worker.DisposeAsync();
        }
        if (Api is not null)
        {
            await Api.DisposeAsync();
        }
        await Redis.DisposeAsync();
    }
}
