using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>Webhook deliveries in Redis: the due set the scripts fill, and a hash per delivery.</summary>
public sealed class RedisWebhookDeliveries(RedisScripts scripts, RedisKeys keys, TimeProvider time, IOptions<TaskManagerOptions> options)
    : RedisStore(scripts, keys, time, options), IWebhookDeliveries
{
    /// <summary>A delivery's record is kept as long as the task's (retention), and two more days.</summary>
    private long KeepSeconds => (long)TimeSpan.FromDays(Options.RetentionDays + 2).TotalSeconds;

    public async Task<IReadOnlyList<WebhookDue>> TakeDueAsync(int batch, TimeSpan gap)
    {
        var now = NowMs;
        var reply = (RedisResult[])(await Scripts.RunAsync(Script.TakeWebhooks, [Keys.WebhooksDue],
            [now, batch, (long)gap.TotalMilliseconds]).ConfigureAwait(false))!;
        var at = DateTimeOffset.FromUnixTimeMilliseconds(now);
        return reply.Select(r => Replies.ReadWebhookDue(r) with { At = at }).ToArray();
    }

    public async Task<string> CreateAsync(WebhookDue due, string body)
    {
        var id = "msg_" + TaskIds.New(Time.GetUtcNow());
        await Scripts.RunAsync(Script.CreateDelivery, [Keys.Delivery(id), Keys.Deliveries(due.TaskId)],
            [id, due.TaskId, due.Event, due.Tenant, due.Target, body, due.TraceParent ?? "", NowMs, KeepSeconds]).ConfigureAwait(false);
        return id;
    }

    public async Task SetJobAsync(string taskId, string deliveryId, string jobId) =>
        await Scripts.RunAsync(Script.SetDeliveryJob, [Keys.Delivery(deliveryId), Keys.Task(taskId)], [jobId]).ConfigureAwait(false);

    public async Task<WebhookDelivery?> GetAsync(string deliveryId) =>
        (await ReadAsync(Keys.Delivery(deliveryId), "one", deliveryId).ConfigureAwait(false)).SingleOrDefault();

    public Task<IReadOnlyList<WebhookDelivery>> ListAsync(string taskId) => ReadAsync(Keys.Deliveries(taskId), "task", "");

    public async Task RecordAttemptAsync(string deliveryId, WebhookAttempt attempt, string state)
    {
        var json = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["at"] = attempt.At.ToUnixTimeMilliseconds(),
            ["status_code"] = attempt.StatusCode,
            ["duration_ms"] = Math.Round(attempt.DurationMs, 1),
            ["error"] = attempt.Error,
        });
        await Scripts.RunAsync(Script.RecordDelivery, [Keys.Delivery(deliveryId)], [json, state]).ConfigureAwait(false);
    }

    public async Task<bool> RequestRedeliveryAsync(string taskId, string deliveryId) =>
        (int)await Scripts.RunAsync(Script.Redeliver, [Keys.Delivery(deliveryId)], [deliveryId, taskId]).ConfigureAwait(false) == 1;

    public async Task<IReadOnlyList<string>> TakeRedeliveriesAsync(int batch) =>
        ((RedisResult[])(await Scripts.RunAsync(Script.TakeRedeliveries, [Keys.Redeliver], [batch]).ConfigureAwait(false))!)
            .Select(r => (string)r!).ToArray();

    private async Task<IReadOnlyList<WebhookDelivery>> ReadAsync(string key, string mode, string id)
    {
        var reply = (RedisResult[])(await Scripts.RunAsync(Script.Deliveries, [key], [mode, id]).ConfigureAwait(false))!;
        return reply.Select(entry =>
        {
            var pair = (RedisResult[])entry!;
            var hash = (RedisResult[])pair[1]!;
            var f = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i + 1 < hash.Length; i += 2)
            {
                f[(string)hash[i]!] = (string)hash[i + 1]!;
            }
            return new WebhookDelivery(
                (string)pair[0]!,
                f["task"],
                f["event"],
                f["tenant"],
                f["target"],
                f["body"],
                DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(f["created"], CultureInfo.InvariantCulture)),
                f["state"],
                f.GetValueOrDefault("job"),
                f.GetValueOrDefault("trace") is { Length: > 0 } trace ? trace : null,
                Attempts(f["attempts"]));
        }).ToArray();
    }

    private static WebhookAttempt[] Attempts(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateArray().Select(a => new WebhookAttempt(
            DateTimeOffset.FromUnixTimeMilliseconds(a.GetProperty("at").GetInt64()),
            a.GetProperty("status_code").ValueKind == JsonValueKind.Number ? a.GetProperty("status_code").GetInt32() : null,
            a.GetProperty("duration_ms").GetDouble(),
            a.GetProperty("error").ValueKind == JsonValueKind.String ? a.GetProperty("error").GetString() : null)).ToArray();
    }
}
