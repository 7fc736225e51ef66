namespace TaskManager.Api.Domain;

/// <summary>
/// Webhook deliveries in the store: which are due (the scripts mark a task's events as they
/// happen), each delivery's record with its attempts, and redeliveries a client asked for.
/// </summary>
public interface IWebhookDeliveries
{
    /// <summary>
    /// Takes the deliveries to make now, in the order to make them (a task's start, output, logs,
    /// completed), output and logs at most once per <paramref name="gap"/> each per task.
    /// </summary>
    Task<IReadOnlyList<WebhookDue>> TakeDueAsync(int batch, TimeSpan gap);

    /// <summary>Records a delivery about to be made, with the body every attempt sends; returns its id (the webhook-id).</summary>
    Task<string> CreateAsync(WebhookDue due, string body);

    /// <summary>Records the job that makes a delivery; the task's next delivery follows that job.</summary>
    Task SetJobAsync(string taskId, string deliveryId, string jobId);

    Task<WebhookDelivery?> GetAsync(string deliveryId);

    /// <summary>A task's deliveries, oldest first.</summary>
    Task<IReadOnlyList<WebhookDelivery>> ListAsync(string taskId);

    /// <summary>Records an attempt and the delivery's state after it.</summary>
    Task RecordAttemptAsync(string deliveryId, WebhookAttempt attempt, string state);

    /// <summary>Asks for a delivery of the task to be sent again; false when the task has no such delivery or it is pending (being made).</summary>
    Task<bool> RequestRedeliveryAsync(string taskId, string deliveryId);

    /// <summary>Takes the deliveries clients asked to send again.</summary>
    Task<IReadOnlyList<string>> TakeRedeliveriesAsync(int batch);
}

/// <summary>
/// A delivery to make: a task's event, for its tenant, to its webhook URL, after the task's last
/// delivery job (if any); <paramref name="At"/> is when it was taken, the time the spacing of a
/// task's output and logs deliveries is counted by.
/// </summary>
public sealed record WebhookDue(string TaskId, string Event, string Tenant, string Target, string? TraceParent, string? LastJob,
    DateTimeOffset At = default);

/// <summary>A webhook delivery: its id is the <c>webhook-id</c> of each of its attempts.</summary>
public sealed record WebhookDelivery(
    string Id,
    string TaskId,
    string Event,
    string Tenant,
    string Target,
    string Body,
    DateTimeOffset CreatedAt,
    string State,
    string? JobId,
    string? TraceParent,
    IReadOnlyList<WebhookAttempt> Attempts);

/// <summary>One attempt of a delivery: when, the receiver's status code (none when it was not reached), how long, and what went wrong.</summary>
public sealed record WebhookAttempt(DateTimeOffset At, int? StatusCode, double DurationMs, string? Error);

/// <summary>The states of a delivery.</summary>
public static class WebhookStates
{
    /// <summary>Not made yet, or to be tried again.</summary>
    public const string Pending = "pending";

    /// <summary>The receiver answered 2xx.</summary>
    public const string Delivered = "delivered";

    /// <summary>Every attempt failed.</summary>
    public const string Failed = "failed";

    /// <summary>The target is not allowed (a private address); never sent.</summary>
    public const string Refused = "refused";

    /// <summary>The receiver answered 410: it wants no more.</summary>
    public const string Gone = "gone";
}
