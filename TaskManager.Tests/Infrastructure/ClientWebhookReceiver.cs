using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace TaskManager.Tests.Infrastructure;

/// <summary>One webhook request as the receiver got it.</summary>
public sealed record ReceivedWebhook(string Path, string Id, string Timestamp, string Signature, string Body, DateTimeOffset ReceivedAt)
{
    public JsonElement Json => JsonDocument.Parse(Body).RootElement;

    public string Type => Json.GetProperty("type").GetString()!;

    public string TaskId => Json.GetProperty("data").GetProperty("id").GetString()!;

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

/// <summary>
/// A client's service receiving its tasks' webhooks, on loopback, for the end-to-end tests (the
/// sender's own tests use <see cref="WebhookReceiver"/>). What it
/// answers depends on the path: <c>/ok/...</c> 204, <c>/flaky/...</c> 500 twice then 200 (per
/// path), <c>/gone/...</c> 410, <c>/never/...</c> no answer at all.
/// </summary>
public sealed class ClientWebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly ConcurrentQueue<ReceivedWebhook> received = new();
    private readonly ConcurrentDictionary<string, int> calls = new();
    private readonly CancellationTokenSource stopping = new();

    private ClientWebhookReceiver(WebApplication app, Uri address)
    {
        this.app = app;
        Address = address;
    }

    public Uri Address { get; }

    public IReadOnlyList<ReceivedWebhook> Received => received.ToArray();

    /// <summary>The requests for one task, in the order they arrived.</summary>
    public IReadOnlyList<ReceivedWebhook> For(string taskId) => Received.Where(r => r.TaskId == taskId).ToArray();

    public string Url(string path) => new Uri(Address, path).ToString();

    public static async Task<ClientWebhookReceiver> StartAsync()
    {
        var port = RedisServer.FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new ClientWebhookReceiver(app, new Uri($"http://127.0.0.1:{port}/"));
        app.MapPost("/{**path}", (Delegate)receiver.ReceiveAsync);
        await app.StartAsync();
        return receiver;
    }

    private async Task<IResult> ReceiveAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync();
        received.Enqueue(new ReceivedWebhook(path, context.Request.Headers["webhook-id"].ToString(),
            context.Request.Headers["webhook-timestamp"].ToString(), context.Request.Headers["webhook-signature"].ToString(), body,
            DateTimeOffset.UtcNow));
        var call = calls.AddOrUpdate(path, 1, (_, n) => n + 1);
        if (path.StartsWith("/never/", StringComparison.Ordinal))
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping.Token);
            await Task.Delay(Timeout.Infinite, linked.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            return Results.StatusCode(499);
        }
        return path switch
        {
            _ when path.StartsWith("/flaky/", StringComparison.Ordinal) => call <= 2 ? Results.StatusCode(500) : Results.Ok(),
            _ when path.StartsWith("/gone/", StringComparison.Ordinal) => Results.StatusCode(410),
            _ => Results.NoContent(),
        };
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        await app.StopAsync();
        await app.DisposeAsync();
        stopping.Dispose();
    }
}
