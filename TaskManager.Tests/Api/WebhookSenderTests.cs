using System.Diagnostics;
using Microsoft.Extensions.Options;
using TaskManager.Api;
using TaskManager.Api.Webhooks;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// One webhook delivery over real HTTP, to a receiver on loopback in the test's process: what
/// arrives, what comes back, what is not followed or read, how long it may take, and which targets
/// are refused before anything is sent.
/// </summary>
[Trait("Category", "Api")]
public sealed class WebhookSenderTests : IAsyncLifetime
{
    private const string Body = """{"type":"task.completed","data":{"id":"t1","status":"succeeded","text":"café ✓"}}""";
    private const long Timestamp = 1767225600;
    private WebhookReceiver receiver = null!;

    public async Task InitializeAsync() => receiver = await WebhookReceiver.StartAsync();

    public async Task DisposeAsync() => await receiver.DisposeAsync();

    [Fact]
    public async Task ADelivery_ArrivesWithTheThreeHeadersAndTheBody_AndTheReceiversStatusComesBackAsItIs()
    {
        using var sender = Sender(allowPrivateTargets: true);
        var signature = WebhookSignature.Sign("msg-1", Timestamp, Body, [WebhookSignature.NewSecret()]);

        var results = new List<WebhookAttemptResult>();
        foreach (var status in new[] { 200, 204, 410, 500 })
        {
            results.Add(await sender.SendAsync(receiver.Url($"/status/{status}"), "msg-1", Timestamp, Body, signature, CancellationToken.None));
        }

        Assert.Equal([200, 204, 410, 500], results.Select(r => r.StatusCode));
        Assert.Equal([true, true, false, false], results.Select(r => r.Delivered));
        Assert.All(results, r => Assert.Null(r.Error));
        Assert.All(results, r => Assert.False(r.Refused));
        Assert.All(results, r => Assert.True(r.Duration > TimeSpan.Zero));
        var arrived = receiver.Deliveries;
        Assert.Equal(4, arrived.Count);
        Assert.All(arrived, delivery =>
        {
            Assert.Equal("msg-1", delivery.Headers["webhook-id"]);
            Assert.Equal("1767225600", delivery.Headers["webhook-timestamp"]);
            Assert.Equal(signature, delivery.Headers["webhook-signature"]);
            Assert.Equal("application/json", delivery.Headers["content-type"]);
            Assert.Equal(WebhookSender.UserAgent, delivery.Headers["user-agent"]);
            Assert.Equal(Body, delivery.Body);
        });
        // One pooled connection carried them all.
        Assert.Equal(1, receiver.Connections);
    }

    [Fact]
    public async Task ARedirect_IsNotFollowed_Its302IsTheResult()
    {
        using var sender = Sender(allowPrivateTargets: true);

        var result = await sender.SendAsync(receiver.Url("/redirect"), "msg-2", Timestamp, Body, "v1,x", CancellationToken.None);

        Assert.Equal(302, result.StatusCode);
        Assert.False(result.Delivered);
        Assert.Equal(["/redirect"], receiver.Deliveries.Select(d => d.Path));
    }

    [Fact]
    public async Task AReceiverThatNeverAnswers_TimesOut_AfterTheConfiguredTime()
    {
        using var sender = Sender(allowPrivateTargets: true, timeoutSeconds: 1);
        var clock = Stopwatch.StartNew();

        var result = await sender.SendAsync(receiver.Url("/silent"), "msg-3", Timestamp, Body, "v1,x", CancellationToken.None);

        Assert.Null(result.StatusCode);
        Assert.False(result.Refused);
        Assert.Equal("timed out after 1 s", result.Error);
        Assert.InRange(result.Duration, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
        Assert.Single(receiver.Deliveries);
        await Wait.UntilAsync(() => receiver.Dropped == 1, TimeSpan.FromSeconds(10), "the receiver to see the connection dropped");
    }

    [Fact]
    public async Task AnAnswerOf1MiBThatDoesNotEnd_IsReadOnlyTo64KiB_ThenItsConnectionIsDropped_AndItsStatusCounts()
    {
        // A sender that read the answer to its end would wait for the receiver, which holds it
        // open, until its own 30 s were up, and report a time-out.
        using var sender = Sender(allowPrivateTargets: true, timeoutSeconds: 30);

        var result = await sender.SendAsync(receiver.Url("/large"), "msg-4", Timestamp, Body, "v1,x", CancellationToken.None);

        Assert.Equal(200, result.StatusCode);
        Assert.Null(result.Error);
        Assert.InRange(result.Duration, TimeSpan.Zero, TimeSpan.FromSeconds(10));
        await Wait.UntilAsync(() => receiver.Dropped == 1, TimeSpan.FromSeconds(10), "the receiver to see the connection dropped");
    }

    [Fact]
    public async Task AClosedPort_IsAConnectionFailure_InOneLine()
    {
        using var sender = Sender(allowPrivateTargets: true);

        var result = await sender.SendAsync(new Uri($"http://127.0.0.1:{RedisServer.FreePort()}/hook"), "msg-5", Timestamp, Body, "v1,x", CancellationToken.None);

        Assert.Null(result.StatusCode);
        Assert.False(result.Refused);
        Assert.StartsWith("connection failed: ", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', result.Error!);
    }

    [Theory]
    [InlineData("127.0.0.1", "refused: 127.0.0.1 is a loopback address")]
    [InlineData("localhost", "refused: localhost resolves to ")]
    [InlineData("[::1]", "refused: ::1 is a loopback address")]
    [InlineData("169.254.169.254", "refused: 169.254.169.254 is a cloud metadata address")]
    public async Task APrivateTarget_IsRefused_SayingWhy_AndTheReceiverSeesNothing(string host, string reason)
    {
        using var sender = Sender(allowPrivateTargets: false);

        var result = await sender.SendAsync(receiver.Url("/status/200", host), "msg-6", Timestamp, Body, "v1,x", CancellationToken.None);

        Assert.True(result.Refused);
        Assert.Null(result.StatusCode);
        Assert.StartsWith(reason, result.Error, StringComparison.Ordinal);
        Assert.EndsWith("; set TaskManager__Webhooks__AllowPrivateTargets=true to allow private targets", result.Error, StringComparison.Ordinal);
        if (host == "localhost")
        {
            Assert.Contains("a loopback address", result.Error, StringComparison.Ordinal);
        }
        // Then a delivery that is allowed: once it has arrived, the refused one would have too.
        using var allowed = Sender(allowPrivateTargets: true);
        Assert.Equal(200, (await allowed.SendAsync(receiver.Url("/status/200"), "msg-7", Timestamp, Body, "v1,x", CancellationToken.None)).StatusCode);
        Assert.Equal(["msg-7"], receiver.Deliveries.Select(d => d.Headers["webhook-id"]));
        Assert.Equal(1, receiver.Connections);
    }

    private static WebhookSender Sender(bool allowPrivateTargets, int timeoutSeconds = 10) => new(
        Options.Create(new TaskManagerOptions { Webhooks = { AllowPrivateTargets = allowPrivateTargets, TimeoutSeconds = timeoutSeconds } }),
        TimeProvider.System);
}
