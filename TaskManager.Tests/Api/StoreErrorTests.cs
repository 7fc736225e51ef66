using System.Net;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// A Redis that answers with an error, without being down: the API answers 503 with a
/// ProblemDetails that names the cause, never a 500, and nothing stored is lost.
/// </summary>
[Trait("Category", "Api")]
public sealed class StoreErrorTests(RedisServer redis) : IClassFixture<RedisServer>
{
    private const string Task = """{"type":"tts","input":{"text":"remember me"}}""";

    [Fact]
    public async Task ARedisOutOfMemory_Answers503NamingTheCause_AndKeepsWhatItHad()
    {
        await redis.FlushAsync();
        await using var api = await ApiProcess.StartAsync(redis);
        var kept = await (await api.Client.PostJsonAsync("/api/tasks", Task)).JsonAsync();

        // As a Redis that reached its memory limit with no eviction: it refuses every write.
        await redis.Db.ExecuteAsync("CONFIG", "SET", "maxmemory", "1");
        HttpResponseMessage refused;
        try
        {
            refused = await api.Client.PostJsonAsync("/api/tasks", Task);
        }
        finally
        {
            await redis.Db.ExecuteAsync("CONFIG", "SET", "maxmemory", "0");
        }

        var problem = await refused.JsonAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("The task store refused the request.", problem.GetProperty("title").GetString());
        Assert.Contains("OOM", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.True(refused.Headers.RetryAfter is not null, "A 503 says when to retry.");
        Assert.DoesNotContain(api.ServerErrors, e => !e.Contains("-> 503", StringComparison.Ordinal));
        var got = await (await api.Client.GetAsync($"/api/tasks/{kept.GetProperty("id").GetString()}")).JsonAsync();
        Assert.Equal("queued", got.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.Accepted, (await api.Client.PostJsonAsync("/api/tasks", Task)).StatusCode);
    }
}
