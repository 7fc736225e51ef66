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

    [Fact]
    public async Task AConnectionResetWithCallsInFlight_Answers503ToEachOfThem_AndTheApiGoesOn()
    {
        await redis.FlushAsync();
        await using var relay = new TcpRelay(new Uri($"tcp://127.0.0.1:{redis.Port}"));
        await using var api = await ApiProcess.StartAsync(redis, environment: new Dictionary<string, string>
        {
            ["ConnectionStrings__redis"] = $"127.0.0.1:{relay.Address.Port},password={redis.Password},abortConnect=false",
        });
        Assert.Equal(HttpStatusCode.Accepted, (await api.Client.PostJsonAsync("/api/tasks", Task)).StatusCode);

        // Redis busy for two seconds with a script of the test's own: the API's calls sent
        // meanwhile are on the wire, waiting for their answers, when the connection is reset.
        var busy = redis.Db.ScriptEvaluateAsync("""
            local t = redis.call('TIME')
            local stop = t[1] * 1000000 + t[2] + 2000000
            repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= stop
            return 1
            """);
        var before = relay.BytesToServer;
        var calls = Enumerable.Range(0, 6)
            .Select(i => i % 2 == 0 ? api.Client.GetAsync("/api/tasks?limit=1") : api.Client.PostJsonAsync("/api/tasks", Task))
            .ToArray();
        // Each call is one FCALL of some hundred bytes.
        await Wait.UntilAsync(() => relay.BytesToServer - before >= 6 * 100, TimeSpan.FromSeconds(5), "the API's calls to reach Redis");
        relay.CutAll();
        var answers = await System.Threading.Tasks.Task.WhenAll(calls);
        await busy;

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.ServiceUnavailable, a.StatusCode));
        Assert.All(answers, a => Assert.NotNull(a.Headers.RetryAfter));
        Assert.True(api.ServerErrors.All(e => e.Contains("-> 503", StringComparison.Ordinal)),
            string.Join('\n', api.ServerErrors) + "\nThe API's output:\n" + api.Output);
        // The API connects again through the relay and takes work.
        await Wait.UntilAsync(async () => (await api.Client.PostJsonAsync("/api/tasks", Task)).StatusCode == HttpStatusCode.Accepted,
            TimeSpan.FromSeconds(20), "the API to take a task again");
    }
}
