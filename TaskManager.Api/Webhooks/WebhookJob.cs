using System.Diagnostics;
using Hangfire;
using Hangfire.Server;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;
using TaskManager.Api.Observability;

namespace TaskManager.Api.Webhooks;

/// <summary>
/// The Hangfire job behind each webhook delivery, named after its task, event and host so the
/// dashboard says which. It signs the delivery's body with the tenant's secrets, sends it, and
/// records the attempt. A 2xx ends it delivered; a 410 ends it gone (the receiver wants no more);
/// a refused target (a private address) ends it refused. Anything else (another status, a time-out,
/// a connection error) throws, and Hangfire tries again after the next backoff
/// (<see cref="WebhookRetryAttribute"/>) until the attempts run out: then it is failed.
/// </summary>
public sealed partial class WebhookJob(
    IWebhookDeliveries deliveries,
    IWebhookSecrets secrets,
    WebhookSender sender,
    TaskTelemetry telemetry,
    TimeProvider time,
    ILogger<WebhookJob> logger)
{
    public const string Queue = "webhooks";

    [Queue(Queue)]
    [JobDisplayName("Webhook {1} of task {0} to {2}")]
    [AutomaticRetry(Attempts = 0)]
    [WebhookRetry]
    public async Task DeliverAsync(string taskId, string @event, string host, string deliveryId, PerformContext? context)
    {
        var delivery = await deliveries.GetAsync(deliveryId);
        if (delivery is null || delivery.State != WebhookStates.Pending)
        {
            return; // past its keeping, or over (a redelivery asked while it was in flight)
        }
        var attempt = (context?.GetJobParameter<int>(WebhookRetryAttribute.RetryCountParameter) ?? 0) + 1;
        var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
        var signature = WebhookSignature.Sign(delivery.Id, timestamp, delivery.Body, await secrets.SigningSecretsAsync(delivery.Tenant));

        var started = time.GetUtcNow();
        var clock = Stopwatch.StartNew();
        var result = await sender.SendAsync(new Uri(delivery.Target), delivery.Id, timestamp, delivery.Body, signature,
            context?.CancellationToken.ShutdownToken ?? CancellationToken.None);
        var last = attempt >= WebhookRetryAttribute.Attempts;
        var state = result switch
        {
            { Refused: true } => WebhookStates.Refused,
            { Delivered: true } => WebhookStates.Delivered,
            { StatusCode: 410 } => WebhookStates.Gone,
            _ when last => WebhookStates.Failed,
            _ => WebhookStates.Pending,
        };
        var error = result.Error ?? (result.Delivered ? null : $"HTTP {result.StatusCode}");
        await deliveries.RecordAttemptAsync(delivery.Id, new WebhookAttempt(started, result.StatusCode, result.Duration.TotalMilliseconds, error), state);

        var outcome = state == WebhookStates.Pending ? "retrying" : state;
        telemetry.WebhookAttempted(@event, outcome);
        TaskTelemetry.RecordSpan("webhook.deliver", delivery.TraceParent, started, started + clock.Elapsed,
            ("task.id", taskId), ("webhook.event", @event), ("webhook.host", host), ("webhook.attempt", attempt),
            ("http.response.status_code", result.StatusCode), ("webhook.outcome", outcome));
        LogAttempt(logger, @event, taskId, host, attempt, outcome, error);
        if (state is WebhookStates.Pending or WebhookStates.Failed)
        {
            throw new WebhookDeliveryException($"Webhook {@event} of task {taskId} to {host}, attempt {attempt}: {error}");
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Webhook {Event} of task {TaskId} to {Host}, attempt {Attempt}: {Outcome} {Error}")]
    private static partial void LogAttempt(ILogger logger, string @event, string taskId, string host, int attempt, string outcome, string? error);
}

/// <summary>A delivery attempt that did not get through; Hangfire tries again.</summary>
public sealed class WebhookDeliveryException(string message) : Exception(message);
