using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A webhook receiver on a free port of both loopbacks (127.0.0.1 and [::1]), in the test's
/// process: it keeps each delivery it gets and counts the connections made to it, so a test can
/// show that a refused target saw nothing at all. Its paths:
/// <list type="bullet">
/// <item><c>/status/{code}</c>: answers that status.</item>
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
        app.MapPost("/status/{code:int}", async (int code, HttpContext context) =>
        {
            await RecordAsync(context);
            return Results.StatusCode(code);
        });
        app.MapPost("/redirect", async (HttpContext context) =>
        {
            await RecordAsync(context);
            return Results.Redirect(Url("/status/200").ToString());
        });
        app.MapPost("/silent", async (HttpContext context) =>
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
        deliveries.Enqueue(new ReceivedDelivery(context.Request.Path, headers, body));
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

/// <summary>One request as the receiver got it: its path, its headers (names in lower case) and its body.</summary>
public sealed record ReceivedDelivery(string Path, IReadOnlyDictionary<string, string> Headers, string Body);
