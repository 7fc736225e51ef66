using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// A task's trace across the hop to the Python worker, as the API exports it over OTLP. In the
/// timing collection: the execution span must last at least the work the task was told to take.
/// </summary>
[Trait("Category", "Fleet")]
[Collection(TimingCollection.Name)]
public sealed class TraceTests(RedisServer redis) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task OneTasksTrace_HoldsTheSubmitSpanAndTheExecuteSpan_TheExecutionAChildOfTheSubmission()
    {
        await redis.FlushAsync();
        await using var receiver = new OtlpReceiver();
        await using var api = await ApiProcess.StartAsync(redis, environment: new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Endpoint,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
            ["OTEL_SERVICE_NAME"] = "api",
        });
        await using var worker = WorkerProcess.Start(api.BaseAddress);
        var id = (await (await api.Client.PostJsonAsync("/api/tasks",
            """{"type":"llm","input":{"prompt":"trace me"},"metadata":{"sim":{"duration_ms":200}}}""")).JsonAsync()).GetProperty("id").GetString()!;
        await Wait.ForAsync(async () => (await (await api.Client.GetAsync($"/api/tasks/{id}")).JsonAsync()).GetProperty("status").GetString(),
            s => s == "succeeded", TimeSpan.FromSeconds(60), "the task to succeed");

        var (submit, execute) = await Wait.ForAsync(
            () => Task.FromResult((
                receiver.Spans.FirstOrDefault(s => s.Name == "task.submit" && s.Attributes.GetValueOrDefault("task.id") == id),
                receiver.Spans.FirstOrDefault(s => s.Name == "task.execute" && s.Attributes.GetValueOrDefault("task.id") == id))),
            spans => spans.Item1 is not null && spans.Item2 is not null, TimeSpan.FromSeconds(30), "both spans to be exported");

        Assert.Equal(submit!.TraceId, execute!.TraceId);
        Assert.Equal(submit.SpanId, execute.ParentSpanId);
        Assert.StartsWith("w_", execute.Attributes["worker.id"]);
        Assert.Equal("1", execute.Attributes["task.attempt"]);
        Assert.True(execute.EndNanos - execute.StartNanos >= 150_000_000UL, "The execution span should cover the 200 ms of work.");
        // The submission itself is part of the client's request trace.
        Assert.Contains(receiver.Spans, s => s.TraceId == submit.TraceId && s.SpanId == submit.ParentSpanId);
    }

    [Fact]
    public async Task AWebhookDelivery_IsASpanOfItsTasksTrace()
    {
        await redis.FlushAsync();
        await using var otlp = new OtlpReceiver();
        await using var receiver = await WebhookReceiver.StartAsync();
        var telemetry = new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.Endpoint,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
            ["TaskManager__Webhooks__AllowPrivateTargets"] = "true",
        };
        await using var api = await ApiProcess.StartAsync(redis, environment: telemetry);
        await using var scheduler = await ApiProcess.StartAsync(redis, role: "scheduler", environment: telemetry);
        var id = (await (await api.Client.PostJsonAsync("/api/tasks",
            $$"""{"type":"tts","input":{"text":"x"},"webhook":"{{receiver.Url("/status/204/traced")}}"}""")).JsonAsync()).GetProperty("id").GetString()!;
        await api.Client.PatchAsync($"/api/tasks/{id}/cancel", null);

        var (submit, deliver) = await Wait.ForAsync(
            () => Task.FromResult((
                otlp.Spans.FirstOrDefault(s => s.Name == "task.submit" && s.Attributes.GetValueOrDefault("task.id") == id),
                otlp.Spans.FirstOrDefault(s => s.Name == "webhook.deliver" && s.Attributes.GetValueOrDefault("task.id") == id))),
            spans => spans.Item1 is not null && spans.Item2 is not null, TimeSpan.FromSeconds(30), "the submit and delivery spans to be exported");

        Assert.Equal(submit!.TraceId, deliver!.TraceId);
        Assert.Equal("completed", deliver.Attributes["webhook.event"]);
        Assert.Equal("delivered", deliver.Attributes["webhook.outcome"]);
        Assert.Single(receiver.For(id));
    }
}
