using System.Net;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// Webhooks end to end: the API, the scheduler that delivers them, a real Python worker, and a
/// real HTTP receiver that verifies each signature with the tenant's secret, as a receiver library
/// would. Retries are 1 s apart here; the receiver's answers depend on the path it is given.
/// </summary>
[Trait("Category", "Fleet")]
[Collection(TimingCollection.Name)]
public sealed class WebhookTests(WebhookFleet fleet) : IClassFixture<WebhookFleet>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(45);

    private WebhookReceiver Receiver => fleet.Receiver;

    [Fact]
    public async Task EachFilter_DeliversExactlyItsEvents_InOrder_CompletedLast_OutputSpacedOut()
    {
        const string streaming = "\"input\":{\"prompt\":\"stream\",\"stream\":true},\"metadata\":{\"sim\":{\"chunks\":100,\"logs\":5,\"duration_ms\":2000}}";
        var all = await SubmitAsync("all", $$"""{"type":"llm",{{streaming}},"webhook_events_filter":["start","output","logs","completed"]}""");
        var completedOnly = await SubmitAsync("completed", $$"""{"type":"llm",{{streaming}}}""");
        var outputOnly = await SubmitAsync("output", $$"""{"type":"llm",{{streaming}},"webhook_events_filter":["output"]}""");

        var allEvents = await ReceivedAsync(all, r => r.Any(w => w.Type == "task.completed"));
        var secret = await fleet.SecretAsync(Credentials.TenantA);

        Assert.All(allEvents, w => Assert.True(w.VerifiesWith(secret), $"signature of {w.Id} does not verify"));
        Assert.Equal("task.start", allEvents[0].Type);
        Assert.Equal("task.completed", allEvents[^1].Type);
        Assert.Equal("succeeded", allEvents[^1].Json.GetProperty("data").GetProperty("status").GetString());
        Assert.Equal(["task.completed", "task.logs", "task.output", "task.start"], allEvents.Select(w => w.Type).Distinct().Order());
        Assert.Single(allEvents, w => w.Type == "task.completed");
        // Output: at most one per 500 ms (by when each delivery was made, its body's timestamp).
        var outputs = allEvents.Where(w => w.Type == "task.output").Select(w => w.Json.GetProperty("timestamp").GetDateTimeOffset()).ToArray();
        Assert.InRange(outputs.Length, 2, 7);
        Assert.All(outputs.Zip(outputs.Skip(1)), pair => Assert.True(pair.Second - pair.First >= TimeSpan.FromMilliseconds(500),
            $"two output deliveries {(pair.Second - pair.First).TotalMilliseconds} ms apart"));
        Assert.Equal(allEvents.Count, allEvents.Select(w => w.Id).Distinct().Count());

        var completedEvents = await ReceivedAsync(completedOnly, r => r.Count >= 1);
        Assert.Equal(["task.completed"], completedEvents.Select(w => w.Type));
        var outputEvents = await ReceivedAsync(outputOnly, r => r.Count >= 1 && r[^1].Json.GetProperty("data").GetProperty("status").GetString() == "succeeded");
        Assert.All(outputEvents, w => Assert.Equal("task.output", w.Type));
        // None of the three sends anything more: each delivery list is complete and delivered.
        foreach (var id in (string[])[all, completedOnly, outputOnly])
        {
            var deliveries = await fleet.DeliveriesAsync(id);
            Assert.All(deliveries, d => Assert.Equal("delivered", d.GetProperty("state").GetString()));
            Assert.Equal(Receiver.For(id).Count, deliveries.Count);
        }
    }

    [Fact]
    public async Task AReceiverAnswering500Twice_GetsTheSameWebhookIdThreeTimes_AndTheDashboardShowsTheRetries()
    {
        var id = await SubmitAsync("flaky", """{"type":"tts","input":{"text":"x"}}""", path: "flaky");

        var received = await ReceivedAsync(id, r => r.Count >= 3);

        Assert.Equal(3, received.Count);
        Assert.Single(received.Select(w => w.Id).Distinct());
        var delivery = (await fleet.WaitForDeliveriesAsync(id, d => d[0].GetProperty("state").GetString() == "delivered")).Single();
        Assert.Equal([500, 500, 200], delivery.GetProperty("attempts").EnumerateArray().Select(a => a.GetProperty("status_code").GetInt32()));
        var page = await fleet.DashboardAsync($"/hangfire/jobs/details/{delivery.GetProperty("job_id").GetString()}");
        Assert.Contains("Retry attempt 1 of", page, StringComparison.Ordinal);
        Assert.Contains("Retry attempt 2 of", page, StringComparison.Ordinal);
        Assert.Contains($"Webhook completed of task {id}", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A410_StopsTheDeliveryAfterOneAttempt()
    {
        var id = await SubmitAsync("gone", """{"type":"tts","input":{"text":"x"}}""", path: "status/410");

        var delivery = (await fleet.WaitForDeliveriesAsync(id, d => d[0].GetProperty("state").GetString() != "pending")).Single();

        Assert.Equal("gone", delivery.GetProperty("state").GetString());
        Assert.Equal([410], delivery.GetProperty("attempts").EnumerateArray().Select(a => a.GetProperty("status_code").GetInt32()));
        // Hangfire holds no retry of it: its job ended.
        var page = await fleet.DashboardAsync($"/hangfire/jobs/details/{delivery.GetProperty("job_id").GetString()}");
        Assert.DoesNotContain("Retry attempt", page, StringComparison.Ordinal);
        Assert.Single(Receiver.For(id));
    }

    [Fact]
    public async Task AReceiverThatNeverAnswers_DoesNotDelayAnotherTasksDelivery()
    {
        var stuck = await SubmitAsync("stuck", """{"type":"tts","input":{"text":"x"}}""", path: "silent");
        await ReceivedAsync(stuck, r => r.Count >= 1);

        var other = await SubmitAsync("prompt", """{"type":"tts","input":{"text":"y"}}""");
        var received = (await ReceivedAsync(other, r => r.Count >= 1)).Single();

        var completedAt = received.Json.GetProperty("data").GetProperty("completed_at").GetDateTimeOffset();
        var delay = received.ReceivedAt - completedAt;
        Assert.True(delay < TimeSpan.FromSeconds(3), $"delivered {delay.TotalMilliseconds:0} ms after the task completed, while another receiver hung");
        // The hung one is still waiting for its answer.
        Assert.Equal("pending", (await fleet.DeliveriesAsync(stuck)).Single().GetProperty("state").GetString());
    }

    [Fact]
    public async Task AfterARotation_AReceiverHoldingEitherSecretVerifies()
    {
        var before = await fleet.SecretAsync(Credentials.TenantA);
        using var admin = fleet.Api.ClientWith(Credentials.AdminKey);
        var rotated = await (await admin.PostAsync($"/api/admin/tenants/{Credentials.TenantA}/webhook-secret", null)).JsonAsync();
        var after = rotated.GetProperty("secret").GetString()!;
        Assert.NotEqual(before, after);

        var id = await SubmitAsync("rotation", """{"type":"tts","input":{"text":"x"}}""");
        var received = (await ReceivedAsync(id, r => r.Count >= 1)).Single();

        Assert.Equal(2, received.Signature.Split(' ').Length);
        Assert.True(received.VerifiesWith(before), "the old secret does not verify");
        Assert.True(received.VerifiesWith(after), "the new secret does not verify");
        Assert.False(received.VerifiesWith("whsec_" + Convert.ToBase64String(new byte[32])), "any secret verifies");
    }

    [Fact]
    public async Task ARedelivery_SendsTheSameWebhookIdAgain()
    {
        var id = await SubmitAsync("again", """{"type":"tts","input":{"text":"x"}}""");
        var first = (await ReceivedAsync(id, r => r.Count >= 1)).Single();
        var delivery = (await fleet.WaitForDeliveriesAsync(id, d => d[0].GetProperty("state").GetString() == "delivered")).Single();

        var response = await fleet.Client.PostAsync($"/api/tasks/{id}/webhooks/{delivery.GetProperty("id").GetString()}/redeliver", null);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var both = await ReceivedAsync(id, r => r.Count >= 2);
        Assert.Equal([first.Id, first.Id], both.Select(w => w.Id));
        Assert.Equal(first.Body, both[1].Body);
    }

    [Fact]
    public async Task AnExpiredTask_IsCompleted_WithItsStatus()
    {
        // No worker takes sd here.
        var id = await SubmitAsync("expired", """{"type":"sd","input":{"prompt":"x"},"start_deadline_seconds":1}""");

        var received = (await ReceivedAsync(id, r => r.Count >= 1)).Single();

        Assert.Equal("task.completed", received.Type);
        Assert.Equal("expired", received.Json.GetProperty("data").GetProperty("status").GetString());
    }

    private async Task<string> SubmitAsync(string name, string json, string path = "status/204")
    {
        var target = Receiver.Url($"/{path}/{name}-{Guid.NewGuid():N}").ToString();
        using var document = JsonDocument.Parse(json);
        var request = document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());
        request["webhook"] = JsonSerializer.SerializeToElement(target);
        return await fleet.SubmitAsync(JsonSerializer.Serialize(request));
    }

    private async Task<IReadOnlyList<ReceivedDelivery>> ReceivedAsync(string taskId, Func<IReadOnlyList<ReceivedDelivery>, bool> done) =>
        await Wait.ForAsync(() => Task.FromResult(Receiver.For(taskId)), done, Timeout, $"webhooks of task {taskId}");
}

/// <summary>
/// A fleet whose scheduler delivers webhooks to loopback (the receiver), retrying 1 s apart, with
/// a worker that takes llm and tts (no sd), and the receiver.
/// </summary>
public sealed class WebhookFleet : Fleet<RedisServer>
{
    private static readonly Dictionary<string, string> WebhookSettings = new(ServerSettings)
    {
        ["TaskManager__Webhooks__AllowPrivateTargets"] = "true",
        ["TaskManager__Webhooks__RetryDelaysSeconds"] = "1,1,1",
        ["TaskManager__Webhooks__TimeoutSeconds"] = "30",
    };

    protected override IDictionary<string, string> Settings => WebhookSettings;

    public WebhookReceiver Receiver { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        Receiver = await WebhookReceiver.StartAsync();
        await base.InitializeAsync();
        StartWorker("webhooks", capacity: 4, environment: new Dictionary<string, string> { ["TASKMANAGER_TASK_TYPES"] = "llm,tts" });
    }

    public async Task<string> SecretAsync(string tenant)
    {
        using var admin = Api.ClientWith(Credentials.AdminKey);
        return (await (await admin.GetAsync($"/api/admin/tenants/{tenant}/webhook-secret")).JsonAsync()).GetProperty("secret").GetString()!;
    }

    public async Task<IReadOnlyList<JsonElement>> DeliveriesAsync(string taskId) =>
        (await (await Client.GetAsync($"/api/tasks/{taskId}/webhooks")).JsonAsync()).GetProperty("deliveries").EnumerateArray().ToArray();

    public Task<IReadOnlyList<JsonElement>> WaitForDeliveriesAsync(string taskId, Func<IReadOnlyList<JsonElement>, bool> done) =>
        Wait.ForAsync(() => DeliveriesAsync(taskId), d => d.Count > 0 && done(d), TimeSpan.FromSeconds(45), $"the deliveries of task {taskId}");

    public async Task<string> DashboardAsync(string path)
    {
        using var admin = Api.ClientWith(Credentials.AdminKey);
        var response = await admin.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (Receiver is not null)
        {
            await Receiver.DisposeAsync();
        }
    }
}

/// <summary>Webhooks where private targets are not allowed: the default, in Production.</summary>
[Trait("Category", "Fleet")]
public sealed class WebhookSafetyTests(ProductionWebhookFleet fleet) : IClassFixture<ProductionWebhookFleet>
{
    [Fact]
    public async Task ATargetOnLoopback_IsRefused_WithTheReasonInTheDeliveryLog_AndNothingIsSent()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var id = await fleet.SubmitAsync($$"""{"type":"tts","input":{"text":"x"},"webhook":"{{receiver.Url("/status/204/private")}}"}""");
        await fleet.Client.PatchAsync($"/api/tasks/{id}/cancel", null);

        var delivery = (await Wait.ForAsync(
            async () => (await (await fleet.Client.GetAsync($"/api/tasks/{id}/webhooks")).JsonAsync()).GetProperty("deliveries").EnumerateArray().ToArray(),
            d => d.Length > 0 && d[0].GetProperty("state").GetString() != "pending", TimeSpan.FromSeconds(30), "the delivery to end")).Single();

        Assert.Equal("refused", delivery.GetProperty("state").GetString());
        var attempt = delivery.GetProperty("attempts").EnumerateArray().Single();
        Assert.Equal(JsonValueKind.Null, attempt.GetProperty("status_code").ValueKind);
        Assert.Contains("127.0.0.1", attempt.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Empty(receiver.Deliveries);
    }
}

/// <summary>A fleet in Production, with webhook settings left at their defaults.</summary>
public sealed class ProductionWebhookFleet : Fleet<RedisServer>
{
    private static readonly Dictionary<string, string> ProductionSettings = new(ServerSettings)
    {
        ["ASPNETCORE_ENVIRONMENT"] = "Production",
    };

    protected override IDictionary<string, string> Settings => ProductionSettings;
}
