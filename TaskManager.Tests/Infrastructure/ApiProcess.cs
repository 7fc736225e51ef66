using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// The API as a deployment runs it: its built assembly in its own process, configured only by
/// environment variables (README, "Settings"), serving real HTTP on a free port.
/// </summary>
public sealed class ApiProcess : IAsyncDisposable
{
    private readonly ChildProcess process;

    private ApiProcess(ChildProcess process, Uri baseAddress)
    {
        this.process = process;
        BaseAddress = baseAddress;
        Client = new HttpClient(new PartyKeyHandler(new ServerErrorRecorder(ServerErrors, new HttpClientHandler())))
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    /// <summary>Every answer of 500 or more that <see cref="Client"/> received: "METHOD path -> status body".</summary>
    public List<string> ServerErrors { get; } = [];

    public Uri BaseAddress { get; }

    /// <summary>Presents each call's party's key (see <see cref="PartyKeyHandler"/>).</summary>
    public HttpClient Client { get; }

    /// <summary>A client presenting <paramref name="key"/> (null: none); the caller disposes it.</summary>
    public HttpClient ClientWith(string? key) => Credentials.ClientWith(BaseAddress, key);

    /// <summary>What the process printed, for failure messages.</summary>
    public string Output => process.Output;

    public static async Task<ApiProcess> StartAsync(ITestRedis redis, string role = "api", IDictionary<string, string>? environment = null)
    {
        var port = RedisServer.FreePort();
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { BuildOutput.Of("TaskManager.Api") },
        };
        start.Environment["ConnectionStrings__redis"] = redis.ConnectionString;
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        start.Environment["TaskManager__Role"] = role;
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        // High enough that only the tests about rate limits meet them.
        start.Environment["TaskManager__RateLimitPerSecond"] = "100000";
        start.Environment["TaskManager__RateLimitBurst"] = "100000";
        foreach (var (name, value) in Credentials.Settings)
        {
            start.Environment[name] = value;
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var api = new ApiProcess(ChildProcess.Start(start, "The API"), new Uri($"http://127.0.0.1:{port}"));
        try
        {
            await api.process.WaitUntilAsync(async () => (await api.Client.GetAsync("/health")).IsSuccessStatusCode,
                "the API to answer /health", () => api.Output);
        }
        catch
        {
            await api.DisposeAsync();
            throw;
        }
        return api;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await process.DisposeAsync();
    }
}

/// <summary>HTTP helpers shared by the API tests.</summary>
public static class Http
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    public static Task<HttpResponseMessage> PostJsonAsync(this HttpClient client, string path, string json) =>
        client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    public static async Task<JsonElement> JsonAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        try
        {
            return JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new InvalidOperationException($"{(int)response.StatusCode} answered a body that is not JSON: '{text}'", ex);
        }
    }

    public static Task<HttpResponseMessage> PostObjectAsync<T>(this HttpClient client, string path, T body) =>
        client.PostAsJsonAsync(path, body, Json);
}

/// <summary>Records every answer of 500 or more, so that a test can show none came.</summary>
public sealed class ServerErrorRecorder(List<string> errors, HttpMessageHandler inner) : DelegatingHandler(inner)
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        if ((int)response.StatusCode >= 500)
        {
            var body = response.Content.Headers.ContentType?.MediaType == "text/event-stream" ? "" : await response.Content.ReadAsStringAsync(cancellationToken);
            lock (errors)
            {
                errors.Add($"{request.Method} {request.RequestUri} -> {(int)response.StatusCode} {body}");
            }
        }
        return response;
    }
}
