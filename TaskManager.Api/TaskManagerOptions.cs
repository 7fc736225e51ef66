using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;

namespace TaskManager.Api;

/// <summary>Settings under <c>TaskManager:</c> (environment: <c>TaskManager__*</c>).</summary>
public sealed class TaskManagerOptions : IValidatableObject
{
    public const string Section = "TaskManager";

    /// <summary><c>api</c> serves HTTP; <c>scheduler</c> runs the Hangfire server.</summary>
    [RegularExpression("^(api|scheduler)$", ErrorMessage = "TaskManager:Role must be 'api' or 'scheduler'.")]
    public string Role { get; set; } = "api";

    /// <summary>
    /// Prefix of every TaskManager key. The braces are a Redis Cluster hash tag: all keys of one
    /// deployment land in one slot, so one script may touch any of them on the node that owns it.
    /// </summary>
    [Required, RegularExpression(@"^\{[A-Za-z0-9_.-]+\}:$", ErrorMessage = "TaskManager:KeyPrefix must look like '{name}:'.")]
    public string KeyPrefix { get; set; } = "{tm}:";

    /// <summary>
    /// Hangfire's own key prefix, apart from TaskManager's. Its braces are a hash tag too: Hangfire
    /// changes several keys in one transaction, which a Redis Cluster allows only within one slot.
    /// </summary>
    [Required, RegularExpression(@"^\{[A-Za-z0-9_.-]+\}:$", ErrorMessage = "TaskManager:HangfirePrefix must look like '{name}:'.")]
    public string HangfirePrefix { get; set; } = "{tm-hangfire}:";

    /// <summary>A worker silent for longer than this loses its tasks.</summary>
    [Range(2, 3600)]
    public int LeaseTtlSeconds { get; set; } = 15;

    /// <summary>How often workers are told to heartbeat.</summary>
    [Range(1, 600)]
    public int HeartbeatIntervalSeconds { get; set; } = 5;

    /// <summary>
    /// The longest a lease long poll may wait, and an idle worker's heartbeat be held. 55 s: an
    /// idle fleet polls about half as often as at 30 s, and it stays under the 60 s that proxies
    /// often allow an idle request.
    /// </summary>
    [Range(1, 300)]
    public int MaxLeaseWaitSeconds { get; set; } = 55;

    /// <summary>Backoff before the first retry, in seconds; doubles (by <see cref="RetryFactor"/>) after each attempt.</summary>
    [Range(0.0, 3600.0)]
    public double RetryBaseSeconds { get; set; } = 1;

    [Range(1.0, 10.0)]
    public double RetryFactor { get; set; } = 2;

    /// <summary>The longest backoff, in seconds.</summary>
    [Range(0.0, 86400.0)]
    public double RetryMaxSeconds { get; set; } = 300;

    /// <summary>Random spread of each backoff, as a fraction (0.2: plus or minus 20 %).</summary>
    [Range(0.0, 1.0)]
    public double RetryJitter { get; set; } = 0.2;

    /// <summary>How long a final task is kept, in days.</summary>
    [Range(0.0, 3650.0)]
    public double RetentionDays { get; set; } = 7;

    /// <summary>A worker not heard from for this long is <c>stale</c> (and no longer counts as live for placement).</summary>
    [Range(1, 3600)]
    public int WorkerStaleSeconds { get; set; } = 10;

    /// <summary>A worker not heard from for this long is <c>dead</c>.</summary>
    [Range(1, 86400)]
    public int WorkerDeadSeconds { get; set; } = 30;

    /// <summary>How many queued tasks of each type a lease considers when the first ones do not fit the worker.</summary>
    [Range(1, 10_000)]
    public int LeaseScanDepth { get; set; } = 64;

    /// <summary>How long a dead worker stays listed, in minutes.</summary>
    [Range(1, 100_000)]
    public int DeadWorkerRetentionMinutes { get; set; } = 60;

    /// <summary>How often the scheduler enforces deadlines and leases, in milliseconds.</summary>
    [Range(50, 60_000)]
    public int SweepIntervalMs { get; set; } = 1000;

    /// <summary>A retry overdue by this long (its Hangfire job lost) is queued by the safety sweep, in seconds.</summary>
    [Range(1, 3600)]
    public int RetryGraceSeconds { get; set; } = 10;

    /// <summary>
    /// Proxies whose X-Forwarded-For, -Proto, -Host and -Prefix headers are believed: IP addresses
    /// and CIDR ranges, comma-separated; empty trusts none (see <see cref="Security.TrustedProxies"/>).
    /// </summary>
    public string TrustedProxies { get; set; } = Security.TrustedProxies.Default;

    /// <summary>
    /// The API's address as clients reach it (<c>https://gateway.example/inference</c>), for the
    /// links in what is sent with no request to answer (webhook bodies); none: paths from the root.
    /// </summary>
    [Url(ErrorMessage = "TaskManager:PublicUrl must be an absolute http or https URL.")]
    public string? PublicUrl { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        TaskManager.Api.Webhooks.WebhookDelays.Parse(Webhooks.RetryDelaysSeconds, out var delaysError);
        if (delaysError is not null)
        {
            yield return new ValidationResult(delaysError, ["Webhooks.RetryDelaysSeconds"]);
        }
        Security.TrustedProxies.Parse(TrustedProxies, out var proxiesError);
        if (proxiesError is not null)
        {
            yield return new ValidationResult(proxiesError, [nameof(TrustedProxies)]);
        }
        // Hangfire's keys have names like TaskManager's ('queue:default'): one prefix each keeps them apart.
        if (string.Equals(KeyPrefix, HangfirePrefix, StringComparison.Ordinal))
        {
            yield return new ValidationResult("TaskManager:KeyPrefix and TaskManager:HangfirePrefix must differ.",
                [nameof(KeyPrefix), nameof(HangfirePrefix)]);
        }
    }

    public RetryPolicy Retry => new(TimeSpan.FromSeconds(RetryBaseSeconds), RetryFactor, TimeSpan.FromSeconds(RetryMaxSeconds), RetryJitter);

    /// <summary>Largest accepted body of <c>POST /api/tasks</c>, in bytes; larger answers 413.</summary>
    [Range(1024, 256 * 1024 * 1024)]
    public long MaxTaskRequestBytes { get; set; } = 1024 * 1024;

    /// <summary>Largest accepted body of <c>POST /api/tasks/batch</c>, in bytes; larger answers 413.
    /// Each task in it must still fit <see cref="MaxTaskRequestBytes"/>.</summary>
    [Range(1024, 1024L * 1024 * 1024)]
    public long MaxBatchRequestBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Largest accepted body of a worker report (complete carries the output), in bytes.</summary>
    [Range(1024, 1024L * 1024 * 1024)]
    public long MaxOutputBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Client keys, each bound to a tenant. A key may be given as <c>sha256:&lt;hex&gt;</c> of itself.</summary>
    public List<ApiKeyOptions> ApiKeys { get; set; } = [];

    /// <summary>Admin keys (plain or <c>sha256:&lt;hex&gt;</c>): the dashboards, admin calls and every tenant's tasks.</summary>
    public List<string> AdminKeys { get; set; } = [];

    /// <summary>Worker tokens (plain or <c>sha256:&lt;hex&gt;</c>): the worker protocol only.</summary>
    public List<string> WorkerTokens { get; set; } = [];

    /// <summary>Requests per second each client or admin key may make, on each API replica (a token bucket).</summary>
    [Range(1, 1_000_000)]
    public int RateLimitPerSecond { get; set; } = 200;

    /// <summary>How many requests a key may make at once above its rate.</summary>
    [Range(1, 1_000_000)]
    public int RateLimitBurst { get; set; } = 400;

    /// <summary>The most tasks one tenant may have queued; past it, submissions answer 429.</summary>
    [Range(1, 100_000_000)]
    public int TenantQueueCap { get; set; } = 10_000;

    /// <summary>How long an Idempotency-Key is remembered, in hours.</summary>
    [Range(1, 24 * 30)]
    public int IdempotencyHours { get; set; } = 24;

    /// <summary>Webhook deliveries (<c>TaskManager:Webhooks:*</c>).</summary>
    [ValidateObjectMembers]
    public WebhookOptions Webhooks { get; set; } = new();

    /// <summary>The OpenAI-compatible API under <c>/v1</c> (<c>TaskManager:OpenAi:*</c>).</summary>
    public OpenAiOptions OpenAi { get; set; } = new();
}

/// <summary>Settings under <c>TaskManager:OpenAi:</c> (environment: <c>TaskManager__OpenAi__*</c>).</summary>
public sealed class OpenAiOptions
{
    /// <summary>
    /// Whether a client that goes away before its answer (a dropped stream, a closed connection)
    /// cancels the task it made, as it cancels the model's work at OpenAI. False leaves the task
    /// running: a client may then follow it at <c>/api/tasks/{id}/events</c>.
    /// </summary>
    public bool CancelOnDisconnect { get; set; } = true;
}

/// <summary>Settings under <c>TaskManager:Webhooks:</c> (environment: <c>TaskManager__Webhooks__*</c>).</summary>
public sealed class WebhookOptions
{
    /// <summary>The longest one delivery attempt may take, connecting and reading the answer included, in seconds.</summary>
    [Range(1, 300)]
    public int TimeoutSeconds { get; set; } = 10;

    /// <summary>
    /// Whether a webhook may target a loopback, private, link-local or cloud metadata address.
    /// False by default: a client's URL must not reach into the deployment's own network.
    /// </summary>
    public bool AllowPrivateTargets { get; set; }

    /// <summary>
    /// The waits between a delivery's attempts, in seconds, comma-separated: one more attempt after
    /// each. The default grows from 5 s to 12 h, ten more attempts over about a day.
    /// </summary>
    public string RetryDelaysSeconds { get; set; } = string.Join(',', TaskManager.Api.Webhooks.WebhookDelays.Default);

    /// <summary>How often the scheduler looks for webhook events to deliver, in milliseconds.</summary>
    [Range(10, 10_000)]
    public int PollIntervalMs { get; set; } = 100;

    /// <summary>How many deliveries each scheduler makes at once (its webhooks queue's Hangfire workers).</summary>
    [Range(1, 200)]
    public int Concurrency { get; set; } = 16;
}

public sealed class ApiKeyOptions
{
    public string Key { get; set; } = "";

    public string Tenant { get; set; } = "";
}
