using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace TaskManager.Bench;

/// <summary>
/// The webhooks scenario's receiver: Kestrel on 127.0.0.1 (a free port), inside the bench process.
/// Every POST is answered 204 as soon as its body is read, and recorded: its path, when it arrived
/// (the machine's UTC clock, the clock the API stamps <c>completed_at</c> with), and from the body
/// the task's <c>data.id</c>, <c>data.completed_at</c> and the delivery's <c>timestamp</c> (when the
/// scheduler made the delivery). Signatures are not checked: the API's tests do that, and here
/// it would only take CPU from the two cores being measured.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly ConcurrentQueue<WebhookReceipt> receipts = new();

    // Distinct task ids received, by the path's first segment ("hook", "warm", ...): what a wait counts.
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, byte>> distinct = new(StringComparer.Ordinal);
    private int received;

    private WebhookReceiver(WebApplication app)
    {
        this.app = app;
    }

    /// <summary>The receiver's root, e.g. <c>http://127.0.0.1:41234</c>.</summary>
    public string Url { get; private set; } = "";

    /// <summary>Every delivery received so far, duplicates included.</summary>
    public int Received => Volatile.Read(ref received);

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.Run(receiver.ReceiveAsync);
        await app.StartAsync();
        receiver.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!
            .Addresses.Single().TrimEnd('/');
        return receiver;
    }

    private async Task ReceiveAsync(HttpContext context)
    {
        var at = DateTimeOffset.UtcNow;
        if (!HttpMethods.IsPost(context.Request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }
        var path = context.Request.Path.Value ?? "";
        string? id = null;
        DateTimeOffset? completedAt = null, timestamp = null;
        try
        {
            using var body = await JsonDocument.ParseAsync(context.Request.Body);
            var root = body.RootElement;
            timestamp = root.TryGetProperty("timestamp", out var t) ? t.GetDateTimeOffset() : null;
            if (root.TryGetProperty("data", out var data))
            {
                id = data.TryGetProperty("id", out var i) ? i.GetString() : null;
                completedAt = data.TryGetProperty("completed_at", out var c) && c.ValueKind == JsonValueKind.String ? c.GetDateTimeOffset() : null;
            }
        }
        catch (JsonException)
        {
            // Recorded without an id: the scenario counts it as not one of its deliveries.
        }
        receipts.Enqueue(new WebhookReceipt(path, id, at, completedAt, timestamp));
        Interlocked.Increment(ref received);
        if (id is not null)
        {
            var segment = path.Split('/', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
            distinct.GetOrAdd(segment, _ => new(StringComparer.Ordinal)).TryAdd(id, 0);
        }
        context.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    /// <summary>How many distinct tasks have had a delivery under <c>/{segment}/</c>.</summary>
    public int Distinct(string segment) => distinct.TryGetValue(segment, out var ids) ? ids.Count : 0;

    /// <summary>The deliveries received under <c>/{segment}/</c>, in the order they arrived, duplicates included.</summary>
    public IReadOnlyList<WebhookReceipt> Receipts(string segment) =>
        receipts.Where(r => r.Path.StartsWith("/" + segment + "/", StringComparison.Ordinal)).ToArray();

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}

/// <summary>One delivery as the receiver saw it: <see cref="ReceivedAt"/> on the machine's UTC clock.</summary>
public sealed record WebhookReceipt(string Path, string? TaskId, DateTimeOffset ReceivedAt, DateTimeOffset? CompletedAt, DateTimeOffset? Timestamp);
