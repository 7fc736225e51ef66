using System.Buffers;
using System.Text;
using System.Text.Json;
using TaskManager.Api.Coordination;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// <c>POST /v1/chat/completions</c> and <c>POST /v1/completions</c>: an <c>llm</c> task each.
/// Not streamed, the answer waits for the task's result (on its event channel, within its
/// timeout). Streamed, the task's output chunks go out as they come, each server-sent event with
/// the id of the task event it carries, so that a client that lost the stream resumes it at
/// <c>/api/tasks/{id}/events</c> with <c>Last-Event-ID</c>.
/// </summary>
public static class OpenAiChat
{
    private static readonly TimeSpan LeastWait = TimeSpan.FromMilliseconds(50);

    /// <summary>Where the answers of chat completions and (legacy) completions differ.</summary>
    private sealed record Kind(string IdPrefix, string Object, string ChunkObject, bool Chat);

    private static readonly Kind ChatKind = new("chatcmpl-", "chat.completion", "chat.completion.chunk", true);
    private static readonly Kind CompletionKind = new("cmpl-", "text_completion", "text_completion", false);

    internal static Task<IResult> ChatAsync(HttpContext http) => RunAsync(http, OpenAiBodies.Chat, ChatKind);

    internal static Task<IResult> CompletionAsync(HttpContext http) => RunAsync(http, OpenAiBodies.Completion, CompletionKind);

    private static Task<IResult> RunAsync(HttpContext http, Func<JsonElement, OpenAiHeaders, OpenAiParsed> parse, Kind kind) =>
        OpenAiApi.RunAsync(http, TaskTypes.Llm, parse, (call, task) => Task.FromResult(Answer(call, task, kind)), call => StreamAsync(call, kind));

    private static IResult Answer(OpenAiCall call, TaskRecord task, Kind kind)
    {
        var result = Result.Of(task);
        var json = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(json))
        {
            Head(w, kind, call, chunk: false);
            w.WriteStartArray("choices");
            Choice(w, kind, result.Text, role: true, result.FinishReason, whole: true);
            w.WriteEndArray();
            Usage(w, result);
            w.WriteEndObject();
        }
        return Results.Bytes(json.WrittenMemory.ToArray(), "application/json");
    }

    private static async Task<IResult> StreamAsync(OpenAiCall call, Kind kind)
    {
        var http = call.Http;
        var aborted = http.RequestAborted;
        var response = http.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var stream = new ChunkStream(call, kind);
        try
        {
            await using var subscription = await http.RequestServices.GetRequiredService<TaskEventSignals>().SubscribeAsync(call.Id);
            await response.StartAsync(aborted);
            var idle = () => call.Left < TaskEventFeed.KeepAlive ? (call.Left > LeastWait ? call.Left : LeastWait) : TaskEventFeed.KeepAlive;
            await foreach (var events in TaskEventFeed.FollowAsync(call.Inspector, subscription, call.Id, null, idle, aborted))
            {
                foreach (var e in events)
                {
                    await stream.AddAsync(e);
                }
                if (events.Count == 0)
                {
                    await stream.IdleAsync();
                }
                await response.Body.WriteAsync(stream.Take(), aborted);
                await response.Body.FlushAsync(aborted);
                if (stream.Ended)
                {
                    break;
                }
            }
            if (!stream.Ended)
            {
                // The task was deleted while it was followed.
                stream.Error(null, call.Failure(null, out _));
                await response.Body.WriteAsync(stream.Take(), aborted);
            }
            if (stream.GaveUp)
            {
                await call.CancelAsync();
            }
        }
        catch (Exception e) when (aborted.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            // The client went away before the end.
            await call.CancelAsync();
        }
        return Results.Empty;
    }

    /// <summary>The chunks of one stream, as its task's events come.</summary>
    private sealed class ChunkStream(OpenAiCall call, Kind kind)
    {
        private readonly ArrayBufferWriter<byte> buffer = new();
        private int attempt; // the attempt whose output went out; 0: none yet

        public bool Ended { get; private set; }

        /// <summary>The task was not final within its timeout: the stream ended with an error.</summary>
        public bool GaveUp { get; private set; }

        public ReadOnlyMemory<byte> Take()
        {
            var written = buffer.WrittenMemory.ToArray();
            buffer.Clear();
            return written;
        }

        public async Task AddAsync(TaskEvent e)
        {
            if (Ended)
            {
                return;
            }
            if (e.Kind == "chunk")
            {
                if (attempt != 0 && e.Attempt != attempt)
                {
                    Retried(e.Id, e.Attempt);
                    return;
                }
                using var data = JsonDocument.Parse(e.DataJson);
                var text = data.RootElement.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
                Chunk(e.Id, text, role: attempt == 0, finish: null);
                attempt = e.Attempt;
                return;
            }
            if (!TaskEventFeed.IsFinal(e))
            {
                return;
            }
            var task = await call.Inspector.GetAsync(call.Id);
            if (task?.Status != TaskState.Succeeded)
            {
                Error(e.Id, call.Failure(task, out _));
                return;
            }
            if (attempt != 0 && task.Attempt != attempt)
            {
                Retried(e.Id, task.Attempt);
                return;
            }
            var result = Result.Of(task);
            // A backend that did not stream: its whole text is one chunk.
            if (attempt == 0 && result.Text.Length > 0)
            {
                Chunk(e.Id, result.Text, role: true, finish: null);
                attempt = task.Attempt;
            }
            Chunk(e.Id, kind.Chat ? null : "", role: attempt == 0, result.FinishReason);
            if (call.Request.IncludeUsage)
            {
                Data(w =>
                {
                    Head(w, kind, call, chunk: true);
                    w.WriteStartArray("choices");
                    w.WriteEndArray();
                    Usage(w, result);
                    w.WriteEndObject();
                });
            }
            Done();
        }

        /// <summary>Nothing happened for a while: a keep-alive, or an error once the task's time is up.</summary>
        public async Task IdleAsync()
        {
            if (call.Left > TimeSpan.Zero || await call.Inspector.GetAsync(call.Id) is not { } task || TaskState.IsFinal(task.Status))
            {
                Append(": keep-alive\n\n");
                return;
            }
            GaveUp = true;
            Error(null, call.Failure(task, out _));
        }

        public void Error(string? id, OpenAiErrors.Body error)
        {
            Append(OpenAiProblemWriter.Event(id, error));
            Done();
        }

        /// <summary>An attempt whose output went out ended, and the task runs again: its new output cannot follow the old one.</summary>
        private void Retried(string id, int next) => Error(id, new OpenAiErrors.Body(
            $"Task {call.Id}'s attempt {attempt} ended after its output was streamed, and the task runs again as attempt {next}; " +
            $"its answer is at {TaskLinks.Of(call.Http.Request).Task(call.Id)} when it ends.", OpenAiErrors.ServerError, null, "attempt_retried"));

        private void Done()
        {
            Append("data: [DONE]\n\n");
            Ended = true;
        }

        private void Chunk(string id, string? text, bool role, string? finish)
        {
            Append($"id: {id}\n");
            Data(w =>
            {
                Head(w, kind, call, chunk: true);
                w.WriteStartArray("choices");
                Choice(w, kind, text, role, finish, whole: false);
                w.WriteEndArray();
                if (call.Request.IncludeUsage)
                {
                    w.WriteNull("usage");
                }
                w.WriteEndObject();
            });
        }

        private void Data(Action<Utf8JsonWriter> write)
        {
            Append("data: ");
            using (var w = new Utf8JsonWriter(buffer))
            {
                write(w);
            }
            Append("\n\n");
        }

        private void Append(string text) => Encoding.UTF8.GetBytes(text, buffer);
    }

    private static void Head(Utf8JsonWriter w, Kind kind, OpenAiCall call, bool chunk)
    {
        w.WriteStartObject();
        w.WriteString("id", kind.IdPrefix + call.Id);
        w.WriteString("object", chunk ? kind.ChunkObject : kind.Object);
        w.WriteNumber("created", call.Created);
        w.WriteString("model", call.Model);
    }

    /// <summary>One choice: a whole message, a chat delta, or a completion's text.</summary>
    private static void Choice(Utf8JsonWriter w, Kind kind, string? text, bool role, string? finish, bool whole)
    {
        w.WriteStartObject();
        if (kind.Chat)
        {
            w.WriteNumber("index", 0);
            w.WriteStartObject(whole ? "message" : "delta");
            if (role)
            {
                w.WriteString("role", "assistant");
            }
            if (text is not null)
            {
                w.WriteString("content", text);
            }
            if (whole)
            {
                w.WriteNull("refusal");
            }
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", text ?? "");
            w.WriteNumber("index", 0);
        }
        w.WriteNull("logprobs");
        if (finish is null)
        {
            w.WriteNull("finish_reason");
        }
        else
        {
            w.WriteString("finish_reason", finish);
        }
        w.WriteEndObject();
    }

    private static void Usage(Utf8JsonWriter w, Result result)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", result.PromptTokens);
        w.WriteNumber("completion_tokens", result.CompletionTokens);
        w.WriteNumber("total_tokens", result.PromptTokens + result.CompletionTokens);
        w.WriteEndObject();
    }

    /// <summary>What an llm task's output says: <c>text</c>, <c>finish_reason</c>, <c>usage</c>.</summary>
    private sealed record Result(string Text, string FinishReason, long PromptTokens, long CompletionTokens)
    {
        public static Result Of(TaskRecord task)
        {
            using var document = JsonDocument.Parse(task.OutputJson ?? "{}");
            var output = document.RootElement;
            var text = output.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
            // OpenAI's reasons a backend may give; anything else ended by itself.
            var finish = output.TryGetProperty("finish_reason", out var f) && f.ValueEquals("length") ? "length" : "stop";
            var usage = output.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object ? u : default;
            return new Result(text, finish, Tokens(usage, "prompt_tokens"), Tokens(usage, "completion_tokens"));
        }

        private static long Tokens(JsonElement usage, string name) =>
            usage.ValueKind == JsonValueKind.Object && usage.TryGetProperty(name, out var n) && n.TryGetInt64(out var count) ? count : 0;
    }
}
