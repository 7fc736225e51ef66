using System.Net;
using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Components.Authorization;

namespace TaskManager.Web.Services;

/// <summary>
/// The console's one way to the API: every call over HTTP, with the signed-in user's own key, so
/// the API's checks (which key may do what, which tenant sees which task) are the console's.
/// </summary>
public sealed class TaskManagerClient(IHttpClientFactory factory, AuthenticationStateProvider authentication)
{
    /// <summary>The named HttpClient for ordinary calls (bounded by a timeout).</summary>
    public const string Calls = "api";

    /// <summary>The named HttpClient for event streams, which stay open as long as a task runs.</summary>
    public const string Streams = "api-events";

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    /// <summary>What the API says a key is (<c>GET /api/me</c>): its role and tenant; null when it refuses the key.</summary>
    public async Task<Caller?> CallerOfAsync(string key, CancellationToken cancellationToken = default)
    {
        var http = factory.CreateClient(Calls);
        using var read = Request(HttpMethod.Get, "/api/me", key);
        using var answer = await http.SendAsync(read, cancellationToken);
        return answer.IsSuccessStatusCode ? await answer.Content.ReadFromJsonAsync<Caller>(Json, cancellationToken) : null;
    }

    public Task<ApiResult<TaskPage>> ListAsync(TaskFilter filter, CancellationToken cancellationToken = default) =>
        SendAsync<TaskPage>(HttpMethod.Get, "/api/tasks" + filter.ToQuery(), null, cancellationToken);

    public Task<ApiResult<TaskItem>> GetAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<TaskItem>(HttpMethod.Get, $"/api/tasks/{Uri.EscapeDataString(id)}", null, cancellationToken);

    public Task<ApiResult<TaskItem>> SubmitAsync(JsonObject request, CancellationToken cancellationToken = default) =>
        SendAsync<TaskItem>(HttpMethod.Post, "/api/tasks", request, cancellationToken);

    public Task<ApiResult<TaskItem>> CancelAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<TaskItem>(HttpMethod.Post, $"/api/tasks/{Uri.EscapeDataString(id)}/cancel", null, cancellationToken);

    public Task<ApiResult<TaskItem>> RetryAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<TaskItem>(HttpMethod.Post, $"/api/tasks/{Uri.EscapeDataString(id)}/retry", null, cancellationToken);

    public Task<ApiResult<JsonElement>> DeleteAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<JsonElement>(HttpMethod.Delete, $"/api/tasks/{Uri.EscapeDataString(id)}", null, cancellationToken);

    public Task<ApiResult<DeliveryList>> WebhooksAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<DeliveryList>(HttpMethod.Get, $"/api/tasks/{Uri.EscapeDataString(id)}/webhooks", null, cancellationToken);

    public Task<ApiResult<WebhookDelivery>> RedeliverAsync(string id, string deliveryId, CancellationToken cancellationToken = default) =>
        SendAsync<WebhookDelivery>(HttpMethod.Post,
            $"/api/tasks/{Uri.EscapeDataString(id)}/webhooks/{Uri.EscapeDataString(deliveryId)}/redeliver", null, cancellationToken);

    public Task<ApiResult<Metrics>> MetricsAsync(CancellationToken cancellationToken = default) =>
        SendAsync<Metrics>(HttpMethod.Get, "/api/tasks/stats/metrics", null, cancellationToken);


    public Task<ApiResult<FleetStats>> WorkerStatsAsync(CancellationToken cancellationToken = default) =>
        SendAsync<FleetStats>(HttpMethod.Get, "/api/tasks/workers/stats", null, cancellationToken);

    public Task<ApiResult<JsonElement>> SetQueuePausedAsync(string type, bool paused, CancellationToken cancellationToken = default) =>
        SendAsync<JsonElement>(HttpMethod.Post, $"/api/admin/queues/{Uri.EscapeDataString(type)}/{(paused ? "pause" : "resume")}", null, cancellationToken);

    public Task<ApiResult<WorkerHealth>> DrainAsync(string workerId, CancellationToken cancellationToken = default) =>
        SendAsync<WorkerHealth>(HttpMethod.Post, $"/api/admin/workers/{Uri.EscapeDataString(workerId)}/drain", null, cancellationToken);

    /// <summary>
    /// A task's events as they happen, from the one after <paramref name="lastEventId"/>; the
    /// sequence ends when the API ends the stream (after the final status) or on cancellation.
    /// </summary>
    public async IAsyncEnumerable<TaskEvent> EventsAsync(string id, string? lastEventId, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var http = factory.CreateClient(Streams);
        using var request = Request(HttpMethod.Get, $"/api/tasks/{Uri.EscapeDataString(id)}/events", await KeyAsync());
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            yield break;
        }
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        await foreach (var item in SseParser.Create(stream).EnumerateAsync(cancellationToken))
        {
            JsonElement data;
            try
            {
                data = JsonDocument.Parse(item.Data).RootElement.Clone();
            }
            catch (JsonException)
            {
                continue;
            }
            yield return new TaskEvent(item.EventId, item.EventType, data);
        }
    }

    /// <summary>An artifact's answer, to stream on to the browser; the caller disposes it.</summary>
    public async Task<HttpResponseMessage> ArtifactAsync(string key, string taskId, string name, CancellationToken cancellationToken)
    {
        var http = factory.CreateClient(Streams);
        using var request = Request(HttpMethod.Get, $"/api/tasks/{Uri.EscapeDataString(taskId)}/artifacts/{Uri.EscapeDataString(name)}", key);
        return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }

    private async Task<ApiResult<T>> SendAsync<T>(HttpMethod method, string path, JsonObject? body, CancellationToken cancellationToken)
    {
        using var request = Request(method, path, await KeyAsync());
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }
        try
        {
            using var response = await factory.CreateClient(Calls).SendAsync(request, cancellationToken);
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                return new ApiResult<T>(default, ProblemOf(response.StatusCode, text));
            }
            return new ApiResult<T>(text.Length == 0 ? default : JsonSerializer.Deserialize<T>(text, Json), null);
        }
        catch (HttpRequestException ex)
        {
            return new ApiResult<T>(default, new ApiProblem(503, "The API cannot be reached.", ex.Message, new Dictionary<string, string[]>()));
        }
        catch (JsonException ex)
        {
            return new ApiResult<T>(default, new ApiProblem(502, "The API answered in a shape this console does not read.", ex.Message, new Dictionary<string, string[]>()));
        }
        catch (Exception ex) when (ex is TaskCanceledException or Polly.ExecutionRejectedException && !cancellationToken.IsCancellationRequested)
        {
            // The client's own time-out, or the resilience handler's (its time-outs and open circuit).
            return new ApiResult<T>(default, new ApiProblem(504, "The API did not answer in time.", null, new Dictionary<string, string[]>()));
        }
    }

    private static ApiProblem ProblemOf(HttpStatusCode status, string text)
    {
        var errors = new Dictionary<string, string[]>();
        string? title = null, detail = null;
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            title = root.TryGetProperty("title", out var t) ? t.GetString() : null;
            detail = root.TryGetProperty("detail", out var d) ? d.GetString() : null;
            if (root.TryGetProperty("errors", out var e) && e.ValueKind == JsonValueKind.Object)
            {
                foreach (var field in e.EnumerateObject())
                {
                    errors[field.Name] = field.Value.ValueKind == JsonValueKind.Array
                        ? field.Value.EnumerateArray().Select(m => m.ToString()).ToArray()
                        : [field.Value.ToString()];
                }
            }
        }
        catch (JsonException)
        {
            detail = text.Length > 200 ? text[..200] : text;
        }
        return new ApiProblem((int)status, title ?? status.ToString(), detail, errors);
    }

    private static HttpRequestMessage Request(HttpMethod method, string path, string? key)
    {
        var request = new HttpRequestMessage(method, path);
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return request;
    }

    private async Task<string?> KeyAsync() =>
        (await authentication.GetAuthenticationStateAsync()).User.FindFirst(ConsoleClaims.Key)?.Value;
}

/// <summary>The task list's filters, as the URL carries them.</summary>
public sealed record TaskFilter(string? Status, string? Type, string? Tenant, string? Cursor, string? Model = null, int Limit = 20)
{
    public string ToQuery()
    {
        var parts = new List<string> { $"limit={Limit}" };
        void Add(string name, string? value)
        {
            if (!string.IsNullOrEmpty(value))
            {
                parts.Add($"{name}={Uri.EscapeDataString(value)}");
            }
        }
        Add("status", Status);
        Add("type", Type);
        Add("tenant", Tenant);
        Add("model", Model);
        Add("cursor", Cursor);
        return "?" + string.Join('&', parts);
    }
}
