using System.Net.Http.Headers;
using System.Text.Json;

namespace TaskManager.Tests.Infrastructure;

/// <summary>One server-sent event as a client sees it.</summary>
public sealed record SseEvent(string? Id, string Event, JsonElement Data);

/// <summary>One server-sent event with its data as sent (which need not be JSON: OpenAI's streams end with <c>[DONE]</c>).</summary>
public sealed record RawSseEvent(string? Id, string Event, string Data);

/// <summary>A minimal server-sent events reader over a real HTTP connection.</summary>
public sealed class SseClient : IAsyncDisposable
{
    private readonly HttpResponseMessage response;
    private readonly StreamReader reader;

    private SseClient(HttpResponseMessage response, StreamReader reader)
    {
        this.response = response;
        this.reader = reader;
    }

    public static async Task<SseClient> ConnectAsync(HttpClient client, string path, string? lastEventId = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return new SseClient(response, new StreamReader(await response.Content.ReadAsStreamAsync()));
    }

    /// <summary>Reads the stream of an answer already received (a POST that streams, such as OpenAI's).</summary>
    public static async Task<SseClient> OfAsync(HttpResponseMessage response)
    {
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return new SseClient(response, new StreamReader(await response.Content.ReadAsStreamAsync()));
    }

    /// <summary>The next event, or null when the server ended the stream.</summary>
    public async Task<SseEvent?> NextAsync(TimeSpan timeout) =>
        await NextRawAsync(timeout) is { } e ? new SseEvent(e.Id, e.Event, JsonDocument.Parse(e.Data).RootElement.Clone()) : null;

    /// <summary>The next event with its data as sent, or null when the server ended the stream.</summary>
    public async Task<RawSseEvent?> NextRawAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        string? id = null, name = null, data = null;
        while (await reader.ReadLineAsync(cancel.Token) is { } line)
        {
            if (line.Length == 0)
            {
                if (data is not null)
                {
                    return new RawSseEvent(id, name ?? "message", data);
                }
                continue;
            }
            if (line.StartsWith(':'))
            {
                continue;
            }
            var colon = line.IndexOf(':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "id": id = value; break;
                case "event": name = value; break;
                case "data": data = data is null ? value : data + "\n" + value; break;
            }
        }
        return null;
    }

    /// <summary>Every event until the server ends the stream.</summary>
    public async Task<List<SseEvent>> ReadToEndAsync(TimeSpan timeout) =>
        (await ReadRawToEndAsync(timeout)).Select(e => new SseEvent(e.Id, e.Event, JsonDocument.Parse(e.Data).RootElement.Clone())).ToList();

    /// <summary>Every event, its data as sent, until the server ends the stream.</summary>
    public async Task<List<RawSseEvent>> ReadRawToEndAsync(TimeSpan timeout)
    {
        var events = new List<RawSseEvent>();
        var deadline = DateTime.UtcNow + timeout;
        while (await NextRawAsync(deadline - DateTime.UtcNow) is { } e)
        {
            events.Add(e);
        }
        return events;
    }

    public ValueTask DisposeAsync()
    {
        reader.Dispose();
        response.Dispose();
        return ValueTask.CompletedTask;
    }
}
