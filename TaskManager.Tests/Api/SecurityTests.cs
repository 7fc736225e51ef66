using System.Net;
using System.Net.Http.Headers;
using System.Text;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>Who may do what, over real HTTP against the real API: keys, roles and tenants.</summary>
[Trait("Category", "Api")]
public sealed class SecurityTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private ApiProcess Api => fixture.Api;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    public static TheoryData<string, string, string> Refusals()
    {
        var data = new TheoryData<string, string, string>();
        const string task = "0123456789abcdef0123456789abcdef";
        const string worker = "w_0123456789abcdef0123456789abcdef";
        string[] clientCalls =
        [
            "POST /api/tasks", "GET /api/tasks", $"GET /api/tasks/{task}", $"PATCH /api/tasks/{task}/cancel",
            $"DELETE /api/tasks/{task}", $"GET /api/tasks/{task}/events", $"GET /api/tasks/{task}/artifacts/a.png",
            "GET /api/tasks/workers/health", "GET /api/tasks/workers/stats", "GET /api/me",
        ];
        string[] workerCalls =
        [
            "POST /api/workers/register", $"POST /api/workers/{worker}/heartbeat", $"POST /api/workers/{worker}/lease",
            $"POST /api/workers/{worker}/tasks/{task}/progress", $"POST /api/workers/{worker}/progress",
            $"POST /api/workers/{worker}/tasks/{task}/complete",
            $"POST /api/workers/{worker}/tasks/{task}/fail", $"PUT /api/workers/{worker}/tasks/{task}/artifacts/a.png",
        ];
        string[] adminCalls =
        [
            $"POST /api/admin/workers/{worker}/drain", "GET /api/admin/tenants/tenant-a/webhook-secret",
            "POST /api/admin/tenants/tenant-a/webhook-secret",
        ];
        foreach (var call in clientCalls.Concat(workerCalls).Concat(adminCalls))
        {
            data.Add(call, "none", "401");
            data.Add(call, "wrong", "401");
        }
        foreach (var call in clientCalls)
        {
            data.Add(call, "worker", "403");
        }
        foreach (var call in workerCalls.Concat(adminCalls))
        {
            data.Add(call, "client", "403");
        }
        foreach (var call in workerCalls)
        {
            data.Add(call, "admin", "403");
        }
        return data;
    }

    [Fact]
    public async Task Me_NamesTheKeysRoleAndTenant()
    {
        async Task<(string, string)> MeAsync(string key)
        {
            using var client = Api.ClientWith(key);
            var me = await (await client.GetAsync("/api/me")).JsonAsync();
            return (me.GetProperty("role").GetString()!, me.GetProperty("tenant").GetString()!);
        }

        Assert.Equal(("client", Credentials.TenantA), await MeAsync(Credentials.ClientKey));
        Assert.Equal(("client", Credentials.TenantB), await MeAsync(Credentials.OtherClientKey));
        Assert.Equal(("admin", "admin"), await MeAsync(Credentials.AdminKey));
    }

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task CallsWithoutTheRightKey_AreRefused_AndChangeNothingInRedis(string call, string presented, string status)
    {
        await SeedAsync();
        var before = await RedisSnapshot.TakeAsync(fixture.Redis);
        var key = presented switch
        {
            "wrong" => "not-a-key-anyone-was-given",
            "worker" => Credentials.WorkerToken,
            "client" => Credentials.ClientKey,
            "admin" => Credentials.AdminKey,
            _ => null,
        };
        using var client = Api.ClientWith(key);
        var (method, path) = (call.Split(' ')[0], call.Split(' ')[1]);
        var request = new HttpRequestMessage(new HttpMethod(method), path)
        {
            Content = method is "GET" or "DELETE" ? null : new StringContent("""{"type":"llm","input":{"prompt":"x"}}""", Encoding.UTF8, "application/json"),
        };

        var response = await client.SendAsync(request);

        Assert.Equal(int.Parse(status, System.Globalization.CultureInfo.InvariantCulture), (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            Assert.Contains("Bearer", response.Headers.WwwAuthenticate.ToString());
        }
        Assert.Empty((await RedisSnapshot.TakeAsync(fixture.Redis)).DifferencesFrom(before));
    }

    [Fact]
    public async Task TheKeyMayComeAsXApiKey_AndAHashedKeyWorks()
    {
        using var client = new HttpClient { BaseAddress = Api.BaseAddress };
        client.DefaultRequestHeaders.Add("X-Api-Key", Credentials.OtherClientKey);

        var response = await client.GetAsync("/api/tasks");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task TenantB_CannotRead_List_Follow_Cancel_OrDelete_TenantAsTask()
    {
        using var a = Api.ClientWith(Credentials.ClientKey);
        using var b = Api.ClientWith(Credentials.OtherClientKey);
        var id = (await (await a.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"A's secret"}}""")).JsonAsync()).GetProperty("id").GetString();
        var before = await RedisSnapshot.TakeAsync(fixture.Redis, "{tm}:task:*");

        Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/api/tasks/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/api/tasks/{id}/events")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/api/tasks/{id}/artifacts/image-0.png")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await b.PatchAsync($"/api/tasks/{id}/cancel", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await b.DeleteAsync($"/api/tasks/{id}")).StatusCode);
        Assert.Equal(0, (await (await b.GetAsync("/api/tasks")).JsonAsync()).GetProperty("items").GetArrayLength());
        // The same answer as for a task that does not exist: nothing tells B that it does.
        var unknown = await (await b.GetAsync("/api/tasks/0123456789abcdef0123456789abcdef")).JsonAsync();
        var foreign = await (await b.GetAsync($"/api/tasks/{id}")).JsonAsync();
        Assert.Equal(unknown.GetProperty("title").GetString(), foreign.GetProperty("title").GetString());
        Assert.Empty((await RedisSnapshot.TakeAsync(fixture.Redis, "{tm}:task:*")).DifferencesFrom(before));

        // A still sees and cancels it; an admin sees every tenant's tasks.
        Assert.Equal(1, (await (await a.GetAsync("/api/tasks")).JsonAsync()).GetProperty("items").GetArrayLength());
        using var admin = Api.ClientWith(Credentials.AdminKey);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync($"/api/tasks/{id}")).StatusCode);
        Assert.Contains(id, (await (await admin.GetAsync("/api/tasks")).JsonAsync()).GetProperty("items").EnumerateArray().Select(t => t.GetProperty("id").GetString()));
        Assert.Equal(HttpStatusCode.Accepted, (await a.PatchAsync($"/api/tasks/{id}/cancel", null)).StatusCode);
    }

    [Fact]
    public async Task TwoConcurrentRequestsWithOneIdempotencyKey_CreateOneTask()
    {
        const string body = """{"type":"tts","input":{"text":"only once"}}""";
        var key = Guid.NewGuid().ToString();

        var responses = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/api/tasks") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Add("Idempotency-Key", key);
            return Api.Client.SendAsync(request);
        }));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.StatusCode));
        var ids = await Task.WhenAll(responses.Select(async r => (await r.JsonAsync()).GetProperty("id").GetString()));
        Assert.Equal(ids[0], ids[1]);
        Assert.Single(responses, r => r.Headers.Contains("Idempotent-Replayed"));
        var listed = await (await Api.Client.GetAsync("/api/tasks")).JsonAsync();
        Assert.Equal(1, listed.GetProperty("items").GetArrayLength());
        var ttl = await fixture.Redis.Db.KeyTimeToLiveAsync($"{{tm}}:idem:{Credentials.TenantA}:{key}");
        Assert.InRange(ttl!.Value.TotalHours, 23.9, 24);
    }

    [Fact]
    public async Task SameIdempotencyKey_WithADifferentBody_Is422()
    {
        var key = Guid.NewGuid().ToString();
        Assert.Equal(HttpStatusCode.Accepted, (await SubmitWithKeyAsync(key, """{"type":"tts","input":{"text":"one"}}""")).StatusCode);

        var response = await SubmitWithKeyAsync(key, """{"type":"tts","input":{"text":"two"}}""");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        // Whitespace and field order do not make a different request.
        Assert.Equal(HttpStatusCode.Accepted, (await SubmitWithKeyAsync(key, """{ "input": {"text":"one"}, "type": "tts" }""")).StatusCode);
    }

    [Fact]
    public async Task Hangfire_WithoutTheAdminKey_IsRefused_OutsideDevelopment()
    {
        await using var production = await ApiProcess.StartAsync(fixture.Redis, environment: new Dictionary<string, string>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
        });
        using var anonymous = production.ClientWith(null);
        using var client = production.ClientWith(Credentials.ClientKey);
        using var admin = production.ClientWith(Credentials.AdminKey);

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/hangfire")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync("/hangfire")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/hangfire")).StatusCode);
        // A browser opens it once with ?api_key=, then its cookie carries on.
        var viaQuery = await anonymous.GetAsync($"/hangfire?api_key={Credentials.AdminKey}");
        Assert.Equal(HttpStatusCode.OK, viaQuery.StatusCode);
        Assert.Contains(viaQuery.Headers.GetValues("Set-Cookie"), c => c.StartsWith("tm_admin_key=", StringComparison.Ordinal) && c.Contains("httponly", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Hangfire_FromLoopbackInDevelopment_Opens_AsTheAppHostsLinkDoes()
    {
        using var anonymous = Api.ClientWith(null);

        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/hangfire")).StatusCode);
    }

    private Task<HttpResponseMessage> SubmitWithKeyAsync(string key, string body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/tasks") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("Idempotency-Key", key);
        return Api.Client.SendAsync(request);
    }

    /// <summary>Some stored state, so that "nothing changed" means something.</summary>
    private async Task SeedAsync()
    {
        await Api.Client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"seed"}}""");
        await HotPathTests.RegisterWorkerAsync(Api.Client, ["sd"]);
    }
}

/// <summary>Rate limits and the tenant queue cap: 429 with Retry-After.</summary>
[Trait("Category", "Api")]
public sealed class LimitTests(RedisServer redis) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task PastTheRateLimit_Answers429WithRetryAfter()
    {
        await redis.FlushAsync();
        await using var api = await ApiProcess.StartAsync(redis, environment: new Dictionary<string, string>
        {
            ["TaskManager__RateLimitPerSecond"] = "2",
            ["TaskManager__RateLimitBurst"] = "5",
        });

        var responses = new List<HttpResponseMessage>();
        for (var i = 0; i < 12; i++)
        {
            responses.Add(await api.Client.GetAsync("/api/tasks"));
        }

        var limited = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToArray();
        Assert.NotEmpty(limited);
        Assert.All(limited, r =>
        {
            Assert.True(r.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), "Retry-After is missing");
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        });
        // Another key has its own budget.
        using var other = api.ClientWith(Credentials.OtherClientKey);
        Assert.Equal(HttpStatusCode.OK, (await other.GetAsync("/api/tasks")).StatusCode);
    }

    [Fact]
    public async Task PastTheTenantsQueueCap_Answers429WithRetryAfter_WhileOtherTenantsSubmit()
    {
        await redis.FlushAsync();
        await using var api = await ApiProcess.StartAsync(redis, environment: new Dictionary<string, string>
        {
            ["TaskManager__TenantQueueCap"] = "3",
        });
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.Accepted, (await api.Client.PostJsonAsync("/api/tasks", """{"type":"sd","input":{"prompt":"x"}}""")).StatusCode);
        }

        var refused = await api.Client.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"one too many"}}""");

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        using var other = api.ClientWith(Credentials.OtherClientKey);
        Assert.Equal(HttpStatusCode.Accepted, (await other.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"B"}}""")).StatusCode);
    }
}
