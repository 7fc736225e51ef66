using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Text.Json;
using TaskManager.Api;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// The API behind a gateway: the X-Forwarded-* headers of a trusted proxy make the links in answers
/// those the client can follow (its scheme, host and the prefix the gateway mounts the API under),
/// and the same headers from anyone else change nothing. The tests through real nginx and YARP
/// are in Platform/GatewayTests.
/// </summary>
[Trait("Category", "Api")]
public sealed class ForwardedHeadersTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private const string Task = """{"type":"llm","input":{"prompt":"behind a gateway"}}""";

    [Fact]
    public async Task FromATrustedProxy_LocationAndUrls_AreTheGatewaysAddress_WithItsPrefix()
    {
        // The test runs on loopback, which the API trusts by default (a gateway on the same machine).
        var (location, task) = await SubmitAsync(fixture.Api.Client, Forwarded("https", "tasks.example.com", "/inference"));

        var id = task.GetProperty("id").GetString();
        var self = $"https://tasks.example.com/inference/api/tasks/{id}";
        Assert.Equal(self, location);
        Assert.Equal(self, task.GetProperty("urls").GetProperty("get").GetString());
        Assert.Equal($"{self}/cancel", task.GetProperty("urls").GetProperty("cancel").GetString());
        Assert.Equal($"{self}/events", task.GetProperty("urls").GetProperty("events").GetString());

        // The links of a listing are made the same way, from the request that lists.
        using var list = new HttpRequestMessage(HttpMethod.Get, "/api/tasks?limit=100");
        AddHeaders(list, Forwarded("http", "gw.internal:8080", null));
        var page = await (await fixture.Api.Client.SendAsync(list)).JsonAsync();
        var listed = page.GetProperty("items").EnumerateArray().Single(t => t.GetProperty("id").GetString() == id);
        Assert.Equal($"http://gw.internal:8080/api/tasks/{id}", listed.GetProperty("urls").GetProperty("get").GetString());
    }

    [Fact]
    public async Task FromAnUntrustedAddress_TheHeadersAreIgnored()
    {
        // This API trusts one other address only: the test's requests come from loopback.
        await using var api = await ApiProcess.StartAsync(fixture.Redis, environment: new Dictionary<string, string>
        {
            ["TaskManager__TrustedProxies"] = "10.20.30.40",
        });

        var (location, task) = await SubmitAsync(api.Client, Forwarded("https", "evil.example", "/phish"));

        var id = task.GetProperty("id").GetString();
        Assert.Equal(new Uri(api.BaseAddress, $"/api/tasks/{id}").ToString(), location);
        Assert.Equal(location, task.GetProperty("urls").GetProperty("get").GetString());
    }

    [Fact]
    public async Task TheClientAddress_IsTheOneTheProxyReports_SoAGatewayOnLoopbackOpensNoLoopbackDoor()
    {
        // In Development the Hangfire dashboard lets loopback in without a key. A remote client
        // coming through a gateway on this machine is remote, not loopback.
        using var anonymous = fixture.Api.ClientWith(null);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/hangfire")).StatusCode);

        using var throughGateway = new HttpRequestMessage(HttpMethod.Get, "/hangfire");
        throughGateway.Headers.Add("X-Forwarded-For", "203.0.113.7");
        var response = await anonymous.SendAsync(throughGateway);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Theory]
    [InlineData("10.0.0.0/8,192.168.1.20,::1", null)]
    [InlineData("", null)]
    [InlineData("10.0.0.0/33", "'10.0.0.0/33'")]
    [InlineData("gateway.local", "'gateway.local'")]
    public void TheTrustedProxiesSetting_IsChecked_AtStart(string setting, string? named)
    {
        var options = new TaskManagerOptions { TrustedProxies = setting };

        var problems = new List<ValidationResult>();
        Validator.TryValidateObject(options, new ValidationContext(options), problems, validateAllProperties: true);

        if (named is null)
        {
            Assert.Empty(problems);
        }
        else
        {
            var problem = Assert.Single(problems);
            Assert.Contains(named, problem.ErrorMessage);
            Assert.Contains("TaskManager:TrustedProxies", problem.ErrorMessage);
        }
    }

    private static Dictionary<string, string> Forwarded(string proto, string host, string? prefix)
    {
        var headers = new Dictionary<string, string>
        {
            ["X-Forwarded-For"] = "198.51.100.23",
            ["X-Forwarded-Proto"] = proto,
            ["X-Forwarded-Host"] = host,
        };
        if (prefix is not null)
        {
            headers["X-Forwarded-Prefix"] = prefix;
        }
        return headers;
    }

    private static void AddHeaders(HttpRequestMessage request, Dictionary<string, string> headers)
    {
        foreach (var (name, value) in headers)
        {
            request.Headers.Add(name, value);
        }
    }

    private static async Task<(string? Location, JsonElement Task)> SubmitAsync(HttpClient client, Dictionary<string, string> headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/tasks")
        {
            Content = new StringContent(Task, System.Text.Encoding.UTF8, "application/json"),
        };
        AddHeaders(request, headers);
        var response = await client.SendAsync(request);
        var task = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, task.ToString());
        return (response.Headers.Location?.OriginalString, task);
    }
}
