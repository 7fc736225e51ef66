using System.Net;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// The OpenAI-compatible API's refusals, on the API alone (no worker): every error under /v1 is
/// OpenAI's <c>{"error": {message, type, param, code}}</c>, its own and those the framework writes
/// (authentication, the rate limiter, unknown routes, unreadable bodies), and a refused request
/// makes no task.
/// </summary>
[Trait("Category", "Api")]
public sealed class OpenAiApiTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private HttpClient Client => fixture.Api.Client;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Theory]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"n":2}""", "n")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}""", "tools")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":2}}""", "logit_bias")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"temperature":3}""", "temperature")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":99999}""", "max_completion_tokens")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_tokens":5,"max_completion_tokens":5}""", "max_tokens")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}""", "stream_options")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"tool","content":"x","tool_call_id":"1"}]}""", "messages[0].tool_call_id")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"robot","content":"x"}]}""", "messages[0].role")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", "messages[0].content")]
    [InlineData("/v1/chat/completions", """{"model":"m"}""", "messages")]
    [InlineData("/v1/completions", """{"prompt":["one","two"]}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt":"x","echo":true}""", "echo")]
    [InlineData("/v1/images/generations", """{"prompt":"x","size":"big"}""", "size")]
    [InlineData("/v1/images/generations", """{"prompt":"x","size":"100x100"}""", "size")]
    [InlineData("/v1/images/generations", """{"prompt":"x","n":5}""", "n")]
    [InlineData("/v1/images/generations", """{"prompt":"x","response_format":"png"}""", "response_format")]
    [InlineData("/v1/audio/speech", """{"input":"x","response_format":"mp3"}""", "response_format")]
    [InlineData("/v1/audio/speech", """{"voice":"alloy"}""", "input")]
    [InlineData("/v1/audio/speech", """{"input":"x","speed":9}""", "speed")]
    public async Task ABadField_Is400NamingIt_AndMakesNoTask(string path, string body, string param)
    {
        var response = await Client.PostJsonAsync(path, body);

        var error = OpenAi.Error(await response.JsonAsync());
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains(param.Split('[')[0], error.GetProperty("message").GetString());
        await AssertNoTaskAsync();
    }

    [Fact]
    public async Task NeutralValuesOfUnsupportedFields_AreAccepted_AndAnAnswerNotReadyInTheTasksTimeout_Is504_AndCancelsIt()
    {
        var response = await OpenAi.PostAsync(Client, "/v1/completions",
            """{"prompt":"x","n":1,"best_of":1,"echo":false,"frequency_penalty":0,"presence_penalty":0,"logprobs":null,"suffix":null}""",
            new Dictionary<string, string> { ["X-TaskManager-Timeout"] = "1" });

        // No worker takes it: the answer gives up after the task's timeout, and nobody will want the task.
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        var error = OpenAi.Error(await response.JsonAsync());
        Assert.Equal(("server_error", "timeout"), (error.GetProperty("type").GetString(), error.GetProperty("code").GetString()));
        var id = response.Headers.GetValues("X-TaskManager-Task-Id").Single();
        var task = await (await Client.GetAsync($"/api/tasks/{id}")).JsonAsync();
        Assert.Equal("canceled", task.GetProperty("status").GetString());
        Assert.Equal(1, task.GetProperty("timeout_seconds").GetInt32());
        Assert.Equal("/v1/completions", task.GetProperty("metadata").GetProperty("openai").GetProperty("endpoint").GetString());
    }

    [Theory]
    [InlineData("X-TaskManager-Priority", "10")]
    [InlineData("X-TaskManager-Priority", "high")]
    [InlineData("X-TaskManager-Timeout", "0")]
    [InlineData("X-TaskManager-Timeout", "86401")]
    public async Task ABadTaskManagerHeader_Is400NamingIt(string header, string value)
    {
        var response = await OpenAi.PostAsync(Client, "/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}]}""",
            new Dictionary<string, string> { [header] = value });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(header, OpenAi.Error(await response.JsonAsync()).GetProperty("param").GetString());
        await AssertNoTaskAsync();
    }

    [Fact]
    public async Task AModelNoLiveWorkerServes_Is404ModelNotFound()
    {
        var response = await Client.PostJsonAsync("/v1/chat/completions", """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var error = OpenAi.Error(await response.JsonAsync());
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await Client.GetAsync("/v1/models/gpt-4o")).StatusCode);
        var models = await (await Client.GetAsync("/v1/models")).JsonAsync();
        Assert.Equal("""{"object":"list","data":[]}""", models.GetRawText());
        await AssertNoTaskAsync();
    }

    [Fact]
    public async Task NoKey_AWrongKey_AndAWorkersToken_AreRefusedInOpenAiShape()
    {
        using var anonymous = fixture.Api.ClientWith(null);
        using var wrong = fixture.Api.ClientWith("not-a-key");
        using var worker = fixture.Api.ClientWith(Credentials.WorkerToken);

        var none = await anonymous.PostJsonAsync("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}]}""");
        var bad = await wrong.GetAsync("/v1/models");
        var forbidden = await worker.GetAsync("/v1/models");

        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal("Bearer", none.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Equal("invalid_api_key", OpenAi.Error(await none.JsonAsync()).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        Assert.Equal("invalid_api_key", OpenAi.Error(await bad.JsonAsync()).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Equal("invalid_request_error", OpenAi.Error(await forbidden.JsonAsync()).GetProperty("type").GetString());
    }

    [Fact]
    public async Task UnreadableBodies_UnknownRoutes_AndWrongMethods_AreOpenAiErrors()
    {
        var broken = await Client.PostJsonAsync("/v1/chat/completions", """{"messages":""");
        var array = await Client.PostJsonAsync("/v1/chat/completions", "[1]");
        var unknown = await Client.PostJsonAsync("/v1/embeddings", """{"input":"x"}""");
        var method = await Client.GetAsync("/v1/chat/completions");
        var large = await Client.PostJsonAsync("/v1/completions", $$"""{"prompt":"{{new string('x', 1_100_000)}}"}""");

        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
        Assert.Contains("JSON", OpenAi.Error(await broken.JsonAsync()).GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, array.StatusCode);
        OpenAi.Error(await array.JsonAsync());
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("/v1/embeddings", OpenAi.Error(await unknown.JsonAsync()).GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.MethodNotAllowed, method.StatusCode);
        OpenAi.Error(await method.JsonAsync());
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, large.StatusCode);
        Assert.Equal("request_too_large", OpenAi.Error(await large.JsonAsync()).GetProperty("code").GetString());
        // The rest of the API keeps its ProblemDetails.
        var problem = await Client.PostJsonAsync("/api/tasks", "{}");
        Assert.Equal("application/problem+json", problem.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task PastTheRateLimit_Is429InOpenAiShape()
    {
        await using var api = await ApiProcess.StartAsync(fixture.Redis, environment: new Dictionary<string, string>
        {
            ["TaskManager__RateLimitPerSecond"] = "1",
            ["TaskManager__RateLimitBurst"] = "2",
        });
        using var client = api.ClientWith(Credentials.ClientKey);

        HttpResponseMessage response;
        var sent = 0;
        do
        {
            response = await client.GetAsync("/v1/models");
        }
        while (response.StatusCode != HttpStatusCode.TooManyRequests && ++sent < 50);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        var error = OpenAi.Error(await response.JsonAsync());
        Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("requests", error.GetProperty("type").GetString());
    }

    [Fact]
    public async Task TheOpenApiDocument_DescribesTheV1Endpoints()
    {
        var document = await (await Client.GetAsync("/openapi/v1.json")).JsonAsync();

        var paths = document.GetProperty("paths");
        foreach (var path in new[] { "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/images/generations", "/v1/audio/speech" })
        {
            Assert.True(paths.TryGetProperty(path, out var item), path);
            var operation = item.EnumerateObject().First().Value;
            Assert.False(string.IsNullOrEmpty(operation.GetProperty("summary").GetString()), path);
            Assert.Equal("OpenAI-compatible", operation.GetProperty("tags")[0].GetString());
        }
    }

    private async Task AssertNoTaskAsync()
    {
        var list = await (await Client.GetAsync("/api/tasks")).JsonAsync();
        Assert.Empty(list.GetProperty("items").EnumerateArray());
    }
}
