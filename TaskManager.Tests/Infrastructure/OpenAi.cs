using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using OpenAI;

namespace TaskManager.Tests.Infrastructure;

/// <summary>Clients of the OpenAI-compatible API: the official OpenAI SDK, and plain HTTP for what the SDK does not show.</summary>
public static class OpenAi
{
    /// <summary>The OpenAI SDK pointed at <c>/v1</c> of the API, presenting <paramref name="key"/>; it does not retry, so one call is one request.</summary>
    public static OpenAIClient Client(Uri api, string key = Credentials.ClientKey) =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = new Uri(api, "/v1"),
            RetryPolicy = new ClientRetryPolicy(0),
            NetworkTimeout = TimeSpan.FromSeconds(90),
        });

    /// <summary>POSTs JSON and returns as soon as the answer's headers came, so that a stream is read as it comes.</summary>
    public static Task<HttpResponseMessage> PostAsync(HttpClient client, string path, string json, IDictionary<string, string>? headers = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.Add(name, value);
        }
        return client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    /// <summary>The <c>error</c> of an OpenAI-shaped error answer, checked to have exactly OpenAI's four members.</summary>
    public static JsonElement Error(JsonElement body)
    {
        var error = body.GetProperty("error");
        Assert.Equal(["code", "message", "param", "type"], error.EnumerateObject().Select(p => p.Name).Order());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()), body.ToString());
        return error;
    }

    /// <summary>The error body of a failed SDK call.</summary>
    public static JsonElement Error(ClientResultException failure) =>
        Error(JsonDocument.Parse(failure.GetRawResponse()!.Content.ToString()).RootElement.Clone());
}
