using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace TaskManager.Cli;

/// <summary>
/// The one HTTP client of the API: presents the key as a Bearer token, turns an error answer into
/// <see cref="ApiException"/> (exit 3) and a connection that cannot be made into
/// <see cref="UnreachableException"/> (exit 4).
/// </summary>
public sealed class ApiClient : IDisposable
{
    /// <summary>The longest an ordinary call may take; a <c>Prefer: wait</c> call gets its wait on top.</summary>
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    private readonly HttpClient http;

    public ApiClient(Connection connection)
    {
        Connection = connection;
        http = new HttpClient { BaseAddress = connection.Url, Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("tm", typeof(ApiClient).Assembly.GetName().Version?.ToString(3)));
        if (connection.Key is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", connection.Key);
        }
    }

    public Connection Connection { get; }

    /// <summary>Sends a call and returns its JSON body as text ("" for a 204), or throws for an error answer.</summary>
    public async Task<string> SendAsync(HttpMethod method, string path, string? json = null, int? preferWait = null, CancellationToken cancel = default)
    {
        using var response = await SendRawAsync(method, path, json, preferWait, cancel);
        return await response.Content.ReadAsStringAsync(cancel);
    }

    public async Task<JsonElement> GetJsonAsync(string path, CancellationToken cancel = default) =>
        Parse(await SendAsync(HttpMethod.Get, path, cancel: cancel));

    public static JsonElement Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    /// <summary>Sends a call and returns the successful answer (the caller disposes it); an error answer throws.</summary>
    public async Task<HttpResponseMessage> SendRawAsync(HttpMethod method, string path, string? json = null, int? preferWait = null,
        CancellationToken cancel = default, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead, bool timeout = true,
        string? lastEventId = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }
        if (preferWait is { } wait)
        {
            request.Headers.Add("Prefer", $"wait={wait}");
        }
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        if (timeout)
        {
            limit.CancelAfter(CallTimeout + TimeSpan.FromSeconds(preferWait ?? 0));
        }
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, completion, limit.Token);
        }
        catch (HttpRequestException ex) when (ex.StatusCode is null)
        {
            throw Unreachable(ex);
        }
        catch (OperationCanceledException ex) when (!cancel.IsCancellationRequested)
        {
            throw new UnreachableException($"{Connection.Url} did not answer within {CallTimeout.TotalSeconds + (preferWait ?? 0):0} s.", ex);
        }
        if (response.IsSuccessStatusCode)
        {
            return response;
        }
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(cancel);
            throw new ApiException((int)response.StatusCode, response.ReasonPhrase ?? response.StatusCode.ToString(), body);
        }
    }

    public UnreachableException Unreachable(Exception ex)
    {
        var cause = ex.InnerException is SocketException socket ? socket.Message : ex.Message;
        return new UnreachableException($"Cannot reach the API at {Connection.Url}: {cause}", ex);
    }

    /// <summary>Whether an exception met while reading an answer means the connection was lost (worth a reconnection).</summary>
    public static bool IsConnectionLost(Exception ex) =>
        ex is IOException or HttpRequestException { StatusCode: null } or HttpIOException
        || ex.InnerException is IOException or SocketException;

    public static string Escape(string segment) => Uri.EscapeDataString(segment);

    public void Dispose() => http.Dispose();
}
