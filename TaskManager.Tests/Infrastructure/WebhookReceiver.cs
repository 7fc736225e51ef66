using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A webhook receiver on a free port of both loopbacks (127.0.0.1 and [::1]), in the test's
/// process, as a client's service would run one: it keeps each delivery it gets and counts the
/// connections made to it, so a test can show that a refused target saw nothing at all. Its paths
/// (each may go on with a name of the test's, <c>/status/204/my-task</c>):
/// <list type="bullet">
/// <item><c>/status/{code}</c>: answers that status.</item>
/// <item><c>/flaky</c>: 500 to the first two requests to a path, then 200.</item>
/// <item><c>/redirect</c>: 302 to <c>/status/200</c>.</item>
/// <item><c>/silent</c>: never answers; holds the request until the sender goes away.</item>
/// <item><c>/large</c>: 200 and a body of 1 MiB that does not end: after it the answer is held
/// open until the sender drops the connection (counted in <see cref="Dropped"/>).</item>
/// </list>
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    public const int LargeAnswerBytes = 1024 * 1024;

    private readonly ConcurrentQueue<ReceivedDelivery> deliveries = new();
    private WebApplication app = null!;
    private int connections;
    private int dropped;

    private WebhookReceiver(int port) => Port = port;

    public int Port { get; }

    /// <summary>Every request that reached a path, in order.</summary>
    public IReadOnlyList<ReceivedDelivery> Deliveries => deliveries.ToArray();

    /// <summary>TCP connections accepted, on either loopback.</summary>
    public int Connections => Volatile.Read(ref connections);

    /// <summary>Requests held open (<c>/silent</c>, <c>/large</c>) whose sender dropped the connection.</summary>
    public int Dropped => Volatile.Read(ref dropped);

    public Uri Url(string path, string host = "127.0.0.1") => new($"http://{host}:{Port}{path}");

    /// <summary>The webhooks about one task (the body's <c>data.id</c>), in the order they arrived.</summary>
    public IReadOnlyList<ReceivedDelivery> For(string taskId) => Deliveries.Where(d => d.TaskId == taskId).ToArray();

    public static async Task<WebhookReceiver> StartAsync()
    {
        var receiver = new WebhookReceiver(RedisServer.FreePort());
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var address in new[] { IPAddress.Loopback, IPAddress.IPv6Loopback })
            {
                kestrel.Listen(address, receiver.Port, listen => listen.Use(next => connection =>
                {
                    Interlocked.Increment(ref receiver.connections);
                    return next(connection);
                }));
            }
        });
        receiver.app = builder.Build();
        receiver.Map();
        await receiver.app.StartAsync();
        return receiver;
    }

    private void Map()
    {
        app.MapPost("/status/{code:int}/{**name}", async (int code, HttpContext context) =>
        {
            await RecordAsync(context);
            return Results.StatusCode(code);
        });
        app.MapPost("/flaky/{**name}", async (HttpContext context) =>
        {
            await RecordAsync(context);
            var path = context.Request.Path.Value ?? "";
            return Results.StatusCode(Deliveries.Count(d => d.Path == path) <= 2 ? 500 : 200);
        });
        app.MapPost("/redirect", async (HttpContext context) =>
        {
            await RecordAsync(context);
            return Results.Redirect(Url("/status/200").ToString());
        });
        app.MapPost("/silent/{**name}", async (HttpContext context) =>
        {
            await RecordAsync(context);
            await HoldUntilDroppedAsync(context);
        });
        app.MapPost("/large", async (HttpContext context) =>
        {
            await RecordAsync(context);
            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/plain";
            var chunk = new byte[16 * 1024];
            Array.Fill(chunk, (byte)'x');
            try
            {
                for (var sent = 0; sent < LargeAnswerBytes; sent += chunk.Length)
                {
                    await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException)
            {
                // Dropped while still writing: the sender read what it wanted and left.
            }
            await HoldUntilDroppedAsync(context);
        });
    }

    private async Task RecordAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body);
        var body = await reader.ReadToEndAsync();
        var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString(), StringComparer.Ordinal);
        deliveries.Enqueue(new ReceivedDelivery(context.Request.Path, headers, body, DateTimeOffset.UtcNow));
    }

    /// <summary>Waits, without answering further, until the sender's connection goes away.</summary>
    private async Task HoldUntilDroppedAsync(HttpContext context)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref dropped);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}

/// <summary>One request as the receiver got it: its path, its headers (names in lower case), its body and when it came.</summary>
public sealed record ReceivedDelivery(string Path, IReadOnlyDictionary<string, string> Headers, string Body, DateTimeOffset ReceivedAt)
{
    public string Id => Headers.GetValueOrDefault("webhook-id") ?? "";

    public string Timestamp => Headers.GetValueOrDefault("webhook-timestamp") ?? "";

    public string Signature => Headers.GetValueOrDefault("webhook-signature") ?? "";

    public JsonElement Json => JsonDocument.Parse(Body).RootElement;

    /// <summary>The webhook's <c>type</c> (<c>task.completed</c>), for a body that is one.</summary>
    public string Type => Json.GetProperty("type").GetString()!;

    /// <summary>The id of the task a webhook is about; none for a body that is not a webhook.</summary>
    public string? TaskId => Json.TryGetProperty("data", out var data) && data.TryGetProperty("id", out var id) ? id.GetString() : null;

    /// <summary>
    /// Verifies the signature as a Standard Webhooks receiver library does: the secret's bytes
    /// (base64 after <c>whsec_</c>) key an HMAC-SHA256 of <c>{id}.{timestamp}.{body}</c>, and one of
    /// the header's space-separated <c>v1,</c> entries must equal its base64.
    /// </summary>
    public bool VerifiesWith(string secret)
    {
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        var expected = Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{Id}.{Timestamp}.{Body}")));
        return Signature.Split(' ').Any(entry => entry.StartsWith("v1,", StringComparison.Ordinal) &&
            CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(entry[3..]), Encoding.ASCII.GetBytes(expected)));
    }
}
