using System.ClientModel;
using System.Net;
using System.Text.Json;
using OpenAI.Audio;
using OpenAI.Chat;
using OpenAI.Images;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// The OpenAI-compatible API under /v1 through the official OpenAI .NET SDK (and plain HTTP where
/// the SDK hides the wire), on the real stack: the API, the scheduler and a Python worker with the
/// sim backend for llm and sd, espeak-ng for speech. The worker makes 10 llm tokens a second
/// (TASKMANAGER_SIM_TOKENS_PER_SECOND), so a stream arrives over time as a model's does.
/// </summary>
[Trait("Category", "Fleet")]
public sealed class OpenAiTests : IClassFixture<FleetFixture>
{
    public const string ChatModel = "sim-chat";
    public const string ImageModel = "sim-image";
    public const string SpeechModel = "espeak";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly FleetFixture fleet;

    public OpenAiTests(FleetFixture fleet)
    {
        this.fleet = fleet;
        if (fleet.Workers.Count == 0)
        {
            fleet.StartWorker("openai", capacity: 3, environment: Environment);
        }
    }

    /// <summary>The worker of the OpenAI tests: sim for llm and sd, espeak for speech, three declared models, 10 tokens a second.</summary>
    public static Dictionary<string, string> Environment => new()
    {
        ["TASKMANAGER_BACKEND"] = "llm=sim,sd=sim,tts=espeak,image_to_text=sim",
        ["TASKMANAGER_MODELS"] = $"{ChatModel},{ImageModel},{SpeechModel}",
        ["TASKMANAGER_SIM_TOKENS_PER_SECOND"] = "10",
    };

    private async Task ReadyAsync() => await fleet.WorkerIdAsync("openai");

    [Fact]
    public async Task Models_ListsWhatLiveWorkersDeclared()
    {
        await ReadyAsync();

        var models = (await OpenAi.Client(fleet.Api.BaseAddress).GetOpenAIModelClient().GetModelsAsync()).Value;

        Assert.Equal(new[] { ChatModel, ImageModel, SpeechModel }.Order(StringComparer.Ordinal), models.Select(m => m.Id).Order(StringComparer.Ordinal));
        Assert.All(models, m => Assert.Equal("taskmanager", m.OwnedBy));
        Assert.All(models, m => Assert.InRange(m.CreatedAt, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddMinutes(1)));
        var raw = await (await fleet.Client.GetAsync("/v1/models")).JsonAsync();
        Assert.Equal("list", raw.GetProperty("object").GetString());
        Assert.All(raw.GetProperty("data").EnumerateArray(), m => Assert.Equal("model", m.GetProperty("object").GetString()));
    }

    [Fact]
    public async Task Chat_NotStreamed_IsAChatCompletionWithUsage_FromAnLlmTaskOfTheCallersTenant()
    {
        await ReadyAsync();
        var chat = OpenAi.Client(fleet.Api.BaseAddress).GetChatClient(ChatModel);

        var answer = await chat.CompleteChatAsync(
            [new SystemChatMessage("You are terse."), new UserChatMessage("Say hello")],
            new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0.5f, EndUserId = "user-42" });

        var completion = answer.Value;
        var id = answer.GetRawResponse().Headers.TryGetValue("X-TaskManager-Task-Id", out var header) ? header! : "";
        Assert.Equal($"chatcmpl-{id}", completion.Id);
        Assert.Equal(ChatModel, completion.Model);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(12, completion.Usage.OutputTokenCount);
        Assert.True(completion.Usage.InputTokenCount > 0);
        Assert.Equal(completion.Usage.InputTokenCount + 12, completion.Usage.TotalTokenCount);
        // The task is a task like any other: the caller's tenant's, its answer the task's output.
        var task = await fleet.GetTaskAsync(id);
        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        Assert.Equal("llm", task.GetProperty("type").GetString());
        Assert.Equal(ChatModel, task.GetProperty("model").GetString());
        Assert.Equal(task.GetProperty("output").GetProperty("text").GetString(), completion.Content.Single().Text);
        Assert.Equal("system", task.GetProperty("input").GetProperty("messages")[0].GetProperty("role").GetString());
        Assert.Equal(0.5, task.GetProperty("input").GetProperty("temperature").GetDouble(), 3);
        Assert.Equal("user-42", task.GetProperty("metadata").GetProperty("openai").GetProperty("user").GetString());
    }

    [Fact]
    public async Task Chat_Streamed_ChunksArriveWhileTheTaskRuns_ThenTheFinishReasonAndTheUsage()
    {
        await ReadyAsync();
        var chat = OpenAi.Client(fleet.Api.BaseAddress).GetChatClient(ChatModel);
        var updates = new List<StreamingChatCompletionUpdate>();
        string? statusAtFirstChunk = null;

        // The SDK asks for the usage chunk (stream_options.include_usage) by itself.
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Tell me a story")],
            new ChatCompletionOptions { MaxOutputTokenCount = 30 }))
        {
            if (updates.Count == 0)
            {
                statusAtFirstChunk = (await fleet.GetTaskAsync(update.CompletionId["chatcmpl-".Length..])).GetProperty("status").GetString();
            }
            updates.Add(update);
        }

        // At 10 tokens a second the answer takes 1.2 s or more: its first token came while the task ran.
        Assert.Equal("running", statusAtFirstChunk);
        Assert.Equal(ChatMessageRole.Assistant, updates[0].Role);
        var id = updates[0].CompletionId["chatcmpl-".Length..];
        Assert.All(updates, u => Assert.Equal($"chatcmpl-{id}", u.CompletionId));
        var text = string.Concat(updates.SelectMany(u => u.ContentUpdate).Select(p => p.Text));
        var task = await fleet.GetTaskAsync(id);
        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        var output = task.GetProperty("output");
        Assert.Equal(output.GetProperty("text").GetString(), text);
        var tokens = output.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.Equal(tokens, updates.Count(u => u.ContentUpdate.Count > 0));
        Assert.Single(updates, u => u.FinishReason is not null);
        Assert.Equal(tokens == 30 ? ChatFinishReason.Length : ChatFinishReason.Stop, updates.Single(u => u.FinishReason is not null).FinishReason);
        var usage = updates[^1].Usage;
        Assert.NotNull(usage);
        Assert.Equal(tokens, usage.OutputTokenCount);
        Assert.Equal(usage.InputTokenCount + tokens, usage.TotalTokenCount);
    }

    [Fact]
    public async Task Chat_Streamed_OnTheWire_EachChunkHasItsTaskEventId_RoleFirst_FinishLast_ThenUsage_ThenDone()
    {
        await ReadyAsync();
        using var response = await OpenAi.PostAsync(fleet.Client, "/v1/chat/completions",
            $$$"""{"model":"{{{ChatModel}}}","messages":[{"role":"user","content":"hi"}],"max_tokens":12,"stream":true,"stream_options":{"include_usage":true}}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = response.Headers.GetValues("X-TaskManager-Task-Id").Single();
        await using var sse = await SseClient.OfAsync(response);

        var events = await sse.ReadRawToEndAsync(Timeout);

        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e.Data).RootElement).ToArray();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.All(chunks[1..^1], c => Assert.False(c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("role", out _)));
        var finish = chunks[^2].GetProperty("choices")[0];
        Assert.Equal("length", finish.GetProperty("finish_reason").GetString());
        Assert.Empty(chunks[^1].GetProperty("choices").EnumerateArray());
        Assert.Equal(12, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.All(chunks[..^1], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
        // Each token's chunk carries the id of the task's chunk event: where a client that lost the stream resumes.
        var taskEvents = await ReadEventsAsync(id);
        var tokens = taskEvents.Where(e => e.Event == "chunk").ToArray();
        Assert.Equal(tokens.Select(e => e.Id), events.Take(12).Select(e => e.Id));
        Assert.Equal(tokens.Select(e => e.Data.GetProperty("text").GetString()),
            chunks.Take(12).Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal(taskEvents[^1].Id, events[12].Id);
    }

    [Fact]
    public async Task Completions_NotStreamedAndStreamed_AreTextCompletions()
    {
        await ReadyAsync();

        var response = await fleet.Client.PostJsonAsync("/v1/completions",
            $$"""{"model":"{{ChatModel}}","prompt":"Once upon a time","max_tokens":12,"user":"u1"}""");
        var body = await response.JsonAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = response.Headers.GetValues("X-TaskManager-Task-Id").Single();
        Assert.Equal($"cmpl-{id}", body.GetProperty("id").GetString());
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = body.GetProperty("choices")[0];
        var task = await fleet.GetTaskAsync(id);
        Assert.Equal(task.GetProperty("output").GetProperty("text").GetString(), choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(12, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal("Once upon a time", task.GetProperty("input").GetProperty("prompt").GetString());

        using var streamed = await OpenAi.PostAsync(fleet.Client, "/v1/completions",
            $$"""{"model":"{{ChatModel}}","prompt":["Once upon a time"],"max_tokens":12,"stream":true}""");
        await using var sse = await SseClient.OfAsync(streamed);
        var events = await sse.ReadRawToEndAsync(Timeout);
        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e.Data).RootElement).ToArray();
        Assert.Equal(13, chunks.Length);
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        Assert.All(chunks, c => Assert.False(c.TryGetProperty("usage", out _)));
        Assert.Equal("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var streamedId = streamed.Headers.GetValues("X-TaskManager-Task-Id").Single();
        Assert.Equal((await fleet.GetTaskAsync(streamedId)).GetProperty("output").GetProperty("text").GetString(),
            string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
    }

    [Fact]
    public async Task Images_AsBase64_AndAsAUrlThatFetchesTheImageWithTheClientKey()
    {
        await ReadyAsync();
        var images = OpenAi.Client(fleet.Api.BaseAddress).GetImageClient(ImageModel);

        var asBytes = await images.GenerateImagesAsync("a lighthouse", 2,
            new ImageGenerationOptions { Size = GeneratedImageSize.W256xH256, ResponseFormat = GeneratedImageFormat.Bytes });
        var asUrl = await images.GenerateImageAsync("a lighthouse at dusk",
            new ImageGenerationOptions { Size = GeneratedImageSize.W512xH512, ResponseFormat = GeneratedImageFormat.Uri });

        Assert.Equal(2, asBytes.Value.Count);
        Assert.All(asBytes.Value, image => Assert.Equal(Png, image.ImageBytes.ToArray()[..8]));
        var id = asBytes.GetRawResponse().Headers.TryGetValue("X-TaskManager-Task-Id", out var header) ? header! : "";
        var input = (await fleet.GetTaskAsync(id)).GetProperty("input");
        Assert.Equal((256, 256, 2), (input.GetProperty("width").GetInt32(), input.GetProperty("height").GetInt32(), input.GetProperty("num_images").GetInt32()));
        var url = asUrl.Value.ImageUri;
        Assert.True(url.IsAbsoluteUri, url.ToString());
        Assert.StartsWith(fleet.Api.BaseAddress.ToString(), url.ToString());
        using var client = fleet.Api.ClientWith(Credentials.ClientKey);
        var fetched = await client.GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, fetched.StatusCode);
        Assert.Equal("image/png", fetched.Content.Headers.ContentType?.MediaType);
        Assert.Equal(Png, (await fetched.Content.ReadAsByteArrayAsync())[..8]);
        using var anonymous = fleet.Api.ClientWith(null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(url)).StatusCode);
    }

    private static readonly byte[] Png = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    [Fact]
    public async Task Speech_ThroughEspeak_IsAWav_AndAFormatTheBackendCannotMakeIsA400NamingIt()
    {
        await ReadyAsync();
        var audio = OpenAi.Client(fleet.Api.BaseAddress).GetAudioClient(SpeechModel);

#pragma warning disable OPENAI001 // ResponseFormat and SpeedRatio are marked experimental in the SDK.
        var speech = await audio.GenerateSpeechAsync("Hello from TaskManager.", GeneratedSpeechVoice.Alloy,
            new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Wav, SpeedRatio = 1.5f });
        var mp3 = await Assert.ThrowsAsync<ClientResultException>(() => audio.GenerateSpeechAsync("Hello.", GeneratedSpeechVoice.Alloy,
            new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Mp3 }));
#pragma warning restore OPENAI001

        var wav = speech.Value.ToArray();
        Assert.Equal("RIFF"u8.ToArray(), wav[..4]);
        Assert.Equal("WAVE"u8.ToArray(), wav[8..12]);
        Assert.True(speech.GetRawResponse().Headers.TryGetValue("Content-Type", out var type) && type!.StartsWith("audio/wav"), type);
        var id = speech.GetRawResponse().Headers.TryGetValue("X-TaskManager-Task-Id", out var header) ? header! : "";
        var task = await fleet.GetTaskAsync(id);
        Assert.Equal("espeak-ng", task.GetProperty("output").GetProperty("engine").GetString());
        // OpenAI's voice names mean the backend's own voice.
        Assert.False(task.GetProperty("input").TryGetProperty("voice", out _));
        Assert.Equal(1.5, task.GetProperty("input").GetProperty("speed").GetDouble(), 3);
        Assert.Equal(400, mp3.Status);
        Assert.Equal("response_format", OpenAi.Error(mp3).GetProperty("param").GetString());
    }

    [Fact]
    public async Task ATaskThatFails_IsAServerErrorInOpenAiShape_WithTheTasksError()
    {
        await ReadyAsync();
        var audio = OpenAi.Client(fleet.Api.BaseAddress).GetAudioClient(SpeechModel);

        // espeak-ng has no voice 'zz': the task fails (not retryable).
        var failure = await Assert.ThrowsAsync<ClientResultException>(() =>
            audio.GenerateSpeechAsync("Hello.", new GeneratedSpeechVoice("zz")));

        Assert.Equal(500, failure.Status);
        var error = OpenAi.Error(failure);
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.Equal("invalid_input", error.GetProperty("code").GetString());
        Assert.Contains("'zz'", error.GetProperty("message").GetString());
        var id = failure.GetRawResponse()!.Headers.TryGetValue("X-TaskManager-Task-Id", out var header) ? header! : "";
        Assert.Equal("failed", (await fleet.GetTaskAsync(id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task AStreamWhoseTaskTimesOut_EndsWithAnErrorEvent_ThenDone()
    {
        await ReadyAsync();

        // 12 tokens take 1.2 s: more than the 1 s the task is given.
        using var response = await OpenAi.PostAsync(fleet.Client, "/v1/chat/completions",
            $$"""{"model":"{{ChatModel}}","messages":[{"role":"user","content":"hi"}],"max_tokens":12,"stream":true}""",
            new Dictionary<string, string> { ["X-TaskManager-Timeout"] = "1" });
        await using var sse = await SseClient.OfAsync(response);
        var events = await sse.ReadRawToEndAsync(Timeout);

        Assert.Equal("[DONE]", events[^1].Data);
        Assert.Equal("error", events[^2].Event);
        var error = OpenAi.Error(JsonDocument.Parse(events[^2].Data).RootElement);
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.All(events[..^2], e => Assert.Equal("message", e.Event));
    }

    [Fact]
    public async Task UnknownModel_Is404ModelNotFound_AndNoTaskIsMade()
    {
        await ReadyAsync();

        var failure = await Assert.ThrowsAsync<ClientResultException>(() =>
            OpenAi.Client(fleet.Api.BaseAddress).GetChatClient("gpt-nonexistent").CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(404, failure.Status);
        var error = OpenAi.Error(failure);
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(failure.GetRawResponse()!.Headers.TryGetValue("X-TaskManager-Task-Id", out _));
    }

    [Fact]
    public async Task AnUnsupportedField_Is400NamingIt_AndNoKeyIs401_InOpenAiShape()
    {
        await ReadyAsync();
        var chat = OpenAi.Client(fleet.Api.BaseAddress).GetChatClient(ChatModel);

        var tools = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")],
            new ChatCompletionOptions { Tools = { ChatTool.CreateFunctionTool("lookup", "Looks something up") } }));
        var badKey = await Assert.ThrowsAsync<ClientResultException>(() =>
            OpenAi.Client(fleet.Api.BaseAddress, "not-a-key").GetChatClient(ChatModel).CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(400, tools.Status);
        Assert.Equal("tools", OpenAi.Error(tools).GetProperty("param").GetString());
        Assert.Equal(401, badKey.Status);
        Assert.Equal("invalid_api_key", OpenAi.Error(badKey).GetProperty("code").GetString());
    }

    [Fact]
    public async Task AClientThatDisconnects_CancelsItsTask()
    {
        await ReadyAsync();
        using var response = await OpenAi.PostAsync(fleet.Client, "/v1/chat/completions",
            $$"""{"model":"{{ChatModel}}","messages":[{"role":"user","content":"a long story"}],"max_tokens":48,"stream":true}""");
        var id = response.Headers.GetValues("X-TaskManager-Task-Id").Single();
        var sse = await SseClient.OfAsync(response);
        Assert.NotNull(await sse.NextRawAsync(Timeout));
        Assert.Equal("running", (await fleet.GetTaskAsync(id)).GetProperty("status").GetString());

        await sse.DisposeAsync();

        var task = await fleet.WaitForStatusAsync(id, s => s is "canceled" or "succeeded" or "failed", Timeout);
        Assert.Equal("canceled", task.GetProperty("status").GetString());
    }

    [Fact]
    public async Task AClientThatGivesUpWaitingForAnAnswer_CancelsItsTask()
    {
        await ReadyAsync();
        using var leaving = new CancellationTokenSource();
        var user = Guid.NewGuid().ToString("N");

        var request = fleet.Client.PostAsync("/v1/chat/completions", new StringContent(
            $$"""{"model":"{{ChatModel}}","messages":[{"role":"user","content":"a long story"}],"max_tokens":40,"user":"{{user}}"}""",
            System.Text.Encoding.UTF8, "application/json"), leaving.Token);
        // The answer names the task only when it comes: find it by its user, once it runs.
        var task = await Wait.ForAsync(async () => (await (await fleet.Client.GetAsync("/api/tasks?type=llm&status=running&limit=100")).JsonAsync())
                .GetProperty("items").EnumerateArray()
                .FirstOrDefault(t => t.GetProperty("metadata").GetProperty("openai").TryGetProperty("user", out var u) && u.GetString() == user),
            t => t.ValueKind == JsonValueKind.Object, Timeout, "the request's task to run");
        await leaving.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);

        var id = task.GetProperty("id").GetString()!;
        var ended = await fleet.WaitForStatusAsync(id, s => s is "canceled" or "succeeded" or "failed", Timeout);
        Assert.Equal("canceled", ended.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ATenantsRequest_IsListedUnderItsTenant_AndNotUnderAnothers()
    {
        await ReadyAsync();
        using var tenantB = fleet.Api.ClientWith(Credentials.OtherClientKey);

        var response = await tenantB.PostJsonAsync("/v1/chat/completions",
            $$"""{"model":"{{ChatModel}}","messages":[{"role":"user","content":"hi"}],"max_tokens":3}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = response.Headers.GetValues("X-TaskManager-Task-Id").Single();

        var ofB = await (await tenantB.GetAsync("/api/tasks?type=llm&limit=100")).JsonAsync();
        var ofA = await (await fleet.Client.GetAsync("/api/tasks?type=llm&limit=100")).JsonAsync();
        Assert.Contains(id, ofB.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("id").GetString()));
        Assert.DoesNotContain(id, ofA.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("id").GetString()));
        Assert.Equal(HttpStatusCode.NotFound, (await fleet.Client.GetAsync($"/api/tasks/{id}")).StatusCode);
    }

    /// <summary>The task's events as its event stream gives them, to the end.</summary>
    private async Task<List<SseEvent>> ReadEventsAsync(string id)
    {
        await using var sse = await SseClient.ConnectAsync(fleet.Client, $"/api/tasks/{id}/events");
        return await sse.ReadToEndAsync(Timeout);
    }
}
