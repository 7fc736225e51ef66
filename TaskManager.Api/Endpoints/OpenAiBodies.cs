using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>An OpenAI request read as a task request, with what its answer needs.</summary>
/// <param name="Stream">Answer with server-sent events as the task streams.</param>
/// <param name="IncludeUsage">A streamed answer ends with a usage chunk.</param>
/// <param name="AsUrl">Images are answered as URLs, not base64.</param>
public sealed record OpenAiRequest(TaskRequest Task, bool Stream = false, bool IncludeUsage = false, bool AsUrl = false);

/// <summary>The task fields an OpenAI request takes from TaskManager's own headers (null: the default).</summary>
public readonly record struct OpenAiHeaders(int? Priority, int? TimeoutSeconds);

/// <summary>A request read: the request, or the field (or header) at fault and why.</summary>
public sealed record OpenAiParsed(OpenAiRequest? Request, string? Param = null, string? Message = null)
{
    public static OpenAiParsed Fail(string? param, string message) => new(null, param, message);
}

/// <summary>
/// Reads the bodies of the OpenAI-compatible API into task requests, which the task request
/// validation (<see cref="TaskRequestValidator"/>) then checks as it checks <c>POST /api/tasks</c>;
/// its errors are named by the OpenAI field they came from. A field this API does not support
/// is refused with a 400 that names it, never ignored, unless it is given its neutral value
/// (<c>n: 1</c>, <c>frequency_penalty: 0</c>, ...) or null.
/// </summary>
public static partial class OpenAiBodies
{
    /// <summary>The voices of OpenAI's speech models: no backend here has them, so they ask for the backend's own voice.</summary>
    public static readonly IReadOnlySet<string> OpenAiVoices = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar",
    };

    // Fields that change nothing at the value given, so a client that always sends them is served.
    private static readonly Dictionary<string, JsonNode> Neutral = new()
    {
        ["n"] = 1, ["best_of"] = 1, ["echo"] = false, ["logprobs"] = false,
        ["frequency_penalty"] = 0, ["presence_penalty"] = 0,
    };

    private static readonly string[] TextFields = ["model", "max_tokens", "temperature", "top_p", "stop", "stream", "stream_options", "user"];

    public static OpenAiParsed Chat(JsonElement root, OpenAiHeaders headers)
    {
        var d = new Draft(root, "/v1/chat/completions");
        d.Allow([.. TextFields, "messages", "max_completion_tokens"]);
        if (d.Has("messages", out var messages))
        {
            d.Input["messages"] = Messages(messages, d);
            d.Params["messages"] = "messages";
        }
        else
        {
            d.Fail("messages", "messages is required: a list of {role, content}.");
        }
        if (d.Has("max_tokens", out _) && d.Has("max_completion_tokens", out _))
        {
            d.Fail("max_tokens", "give max_tokens or max_completion_tokens, not both.");
        }
        if (d.Has("max_completion_tokens", out _))
        {
            d.Take("max_completion_tokens", "max_tokens");
        }
        return Text(d, headers);
    }

    public static OpenAiParsed Completion(JsonElement root, OpenAiHeaders headers)
    {
        var d = new Draft(root, "/v1/completions");
        d.Allow([.. TextFields, "prompt"]);
        d.Params["prompt"] = "prompt";
        if (!d.Has("prompt", out var prompt))
        {
            d.Fail("prompt", "prompt is required.");
        }
        else if (prompt.ValueKind == JsonValueKind.Array)
        {
            // A list of prompts asks for one answer each; one task makes one answer.
            if (prompt.GetArrayLength() != 1 || prompt[0].ValueKind != JsonValueKind.String)
            {
                d.Fail("prompt", "prompt must be a string (or a list of exactly one string): one request makes one completion, and token lists are not taken.");
            }
            else
            {
                d.Input["prompt"] = prompt[0].GetString();
            }
        }
        else
        {
            d.Take("prompt");
        }
        return Text(d, headers);
    }

    /// <summary>What chat and completions share: sampling, stop, streaming, the user.</summary>
    private static OpenAiParsed Text(Draft d, OpenAiHeaders headers)
    {
        if (!d.Input.ContainsKey("max_tokens"))
        {
            d.Take("max_tokens");
        }
        d.Take("temperature");
        d.Take("top_p");
        d.Take("stop");
        var stream = false;
        if (d.Has("stream", out var s))
        {
            if (s.ValueKind is JsonValueKind.True or JsonValueKind.False)
            {
                stream = s.GetBoolean();
            }
            else
            {
                d.Fail("stream", "stream must be true or false.");
            }
        }
        d.Input["stream"] = stream;
        var includeUsage = false;
        if (d.Has("stream_options", out var options))
        {
            if (!stream)
            {
                d.Fail("stream_options", "stream_options is only allowed with stream: true.");
            }
            else if (options.ValueKind != JsonValueKind.Object)
            {
                d.Fail("stream_options", "stream_options must be an object such as {\"include_usage\": true}.");
            }
            else
            {
                foreach (var option in options.EnumerateObject().Where(o => o.Value.ValueKind != JsonValueKind.Null))
                {
                    if (option.Name == "include_usage" && option.Value.ValueKind is JsonValueKind.True or JsonValueKind.False)
                    {
                        includeUsage = option.Value.GetBoolean();
                    }
                    else
                    {
                        d.Fail($"stream_options.{option.Name}", option.Name == "include_usage"
                            ? "stream_options.include_usage must be true or false."
                            : $"stream_options.{option.Name} is not supported; only include_usage is.");
                    }
                }
            }
        }
        return d.Build(TaskTypes.Llm, headers, r => r with { Stream = stream, IncludeUsage = includeUsage });
    }

    /// <summary>Chat messages as the llm input takes them: text content, <c>developer</c> read as <c>system</c>.</summary>
    private static JsonArray? Messages(JsonElement messages, Draft d)
    {
        if (messages.ValueKind != JsonValueKind.Array)
        {
            d.Fail("messages", "messages must be a list of {role, content}.");
            return null;
        }
        var list = new JsonArray();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var path = $"messages[{index++}]";
            if (message.ValueKind != JsonValueKind.Object)
            {
                d.Fail(path, $"{path} must be an object with role and content.");
                continue;
            }
            foreach (var field in message.EnumerateObject().Where(f => f.Name is not ("role" or "content") && f.Value.ValueKind != JsonValueKind.Null))
            {
                d.Fail($"{path}.{field.Name}", $"{path}.{field.Name} is not supported: a message has a role and text content, and this API has no tool calling.");
            }
            var role = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
            if (role is "tool" or "function")
            {
                d.Fail($"{path}.role", $"{path}.role '{role}' is not supported: this API has no tool calling.");
            }
            var entry = new JsonObject
            {
                ["role"] = role == "developer" ? "system" : message.TryGetProperty("role", out var raw) ? JsonNode.Parse(raw.GetRawText()) : null,
                ["content"] = Content(message, path, d),
            };
            list.Add(entry);
        }
        return list;
    }

    /// <summary>A message's content: a string, or a list of text parts joined.</summary>
    private static JsonNode? Content(JsonElement message, string path, Draft d)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.Array)
        {
            return content.ValueKind == JsonValueKind.Undefined ? null : JsonNode.Parse(content.GetRawText());
        }
        var text = new System.Text.StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var type) && type.ValueEquals("text")
                && part.TryGetProperty("text", out var value) && value.ValueKind == JsonValueKind.String)
            {
                text.Append(value.GetString());
            }
            else
            {
                d.Fail($"{path}.content", $"{path}.content: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported.");
            }
        }
        return text.ToString();
    }

    public static OpenAiParsed Images(JsonElement root, OpenAiHeaders headers)
    {
        var d = new Draft(root, "/v1/images/generations");
        d.Allow(["model", "prompt", "n", "size", "response_format", "user"]);
        d.Take("prompt");
        d.Take("n", "num_images");
        if (d.Has("size", out var size) && !size.ValueEquals("auto"))
        {
            var match = size.ValueKind == JsonValueKind.String ? Size().Match(size.GetString()!) : Match.Empty;
            if (match.Success)
            {
                d.Input["width"] = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                d.Input["height"] = int.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
                d.Params["width"] = d.Params["height"] = "size";
            }
            else
            {
                d.Fail("size", "size must be 'WIDTHxHEIGHT', such as '512x512'.");
            }
        }
        var format = d.Has("response_format", out var f) ? f.ValueKind == JsonValueKind.String ? f.GetString() : "" : "url";
        if (format is not ("url" or "b64_json"))
        {
            d.Fail("response_format", "response_format must be 'url' or 'b64_json'.");
        }
        return d.Build(TaskTypes.Sd, headers, r => r with { AsUrl = format == "url" });
    }

    public static OpenAiParsed Speech(JsonElement root, OpenAiHeaders headers)
    {
        var d = new Draft(root, "/v1/audio/speech");
        d.Allow(["model", "input", "voice", "response_format", "speed"]);
        d.Take("input", "text");
        if (d.Has("voice", out var voice))
        {
            if (voice.ValueKind != JsonValueKind.String)
            {
                d.Fail("voice", "voice must be a string.");
            }
            else if (!OpenAiVoices.Contains(voice.GetString()!))
            {
                // OpenAI's own voices mean the backend's default; any other is the backend's (espeak-ng: en-us, fr, ...).
                d.Take("voice");
            }
        }
        if (d.Has("response_format", out var format) && !format.ValueEquals("wav"))
        {
            d.Fail("response_format", $"response_format {format.GetRawText()} cannot be made: the speech backends write WAV only; ask for \"wav\".");
        }
        d.Input["format"] = "wav";
        d.Take("speed");
        return d.Build(TaskTypes.Tts, headers, r => r);
    }

    [GeneratedRegex(@"^(\d{1,5})x(\d{1,5})$")]
    private static partial Regex Size();

    /// <summary>A task request being made from an OpenAI body; the first fault found is the answer.</summary>
    private sealed class Draft(JsonElement root, string endpoint)
    {
        public JsonObject Input { get; } = new();

        /// <summary>Which OpenAI field each input field came from, to name a validation error by it.</summary>
        public Dictionary<string, string> Params { get; } = new(StringComparer.Ordinal);

        private OpenAiParsed? fault = root.ValueKind == JsonValueKind.Object ? null : OpenAiParsed.Fail(null, "The body must be a JSON object.");

        /// <summary>The field, when given and not null.</summary>
        public bool Has(string name, out JsonElement value)
        {
            value = default;
            return root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;
        }

        public void Fail(string? param, string message) => fault ??= OpenAiParsed.Fail(param, message);

        /// <summary>Refuses each field not in <paramref name="fields"/>, unless null or at its neutral value.</summary>
        public void Allow(IReadOnlyCollection<string> fields)
        {
            if (root.ValueKind != JsonValueKind.Object)
            {
                return;
            }
            foreach (var field in root.EnumerateObject())
            {
                if (fields.Contains(field.Name) || field.Value.ValueKind == JsonValueKind.Null
                    || (Neutral.TryGetValue(field.Name, out var neutral) && JsonNode.DeepEquals(JsonNode.Parse(field.Value.GetRawText()), neutral)))
                {
                    continue;
                }
                Fail(field.Name, field.Name switch
                {
                    "n" or "best_of" => $"{field.Name} must be 1: one request makes one task, and one task one answer.",
                    "tools" or "tool_choice" or "functions" or "function_call" or "parallel_tool_calls" => $"{field.Name} is not supported: this API has no tool calling.",
                    _ => $"{field.Name} is not supported by this API; it takes {string.Join(", ", fields)}.",
                });
            }
        }

        /// <summary>Copies a field into the input as it is (the validation checks it), as <paramref name="field"/>.</summary>
        public void Take(string param, string? field = null)
        {
            Params[field ?? param] = param;
            if (Has(param, out var value))
            {
                Input[field ?? param] = JsonNode.Parse(value.GetRawText());
            }
        }

        /// <summary>The task request (validated as <c>POST /api/tasks</c> validates one), or the first fault.</summary>
        public OpenAiParsed Build(string type, OpenAiHeaders headers, Func<OpenAiRequest, OpenAiRequest> answer)
        {
            string? user = null;
            if (Has("user", out var u))
            {
                user = u.ValueKind == JsonValueKind.String ? u.GetString() : null;
                if (user is null)
                {
                    Fail("user", "user must be a string.");
                }
            }
            if (fault is not null)
            {
                return fault;
            }
            var request = new JsonObject { ["type"] = type, ["input"] = Input };
            if (Has("model", out var model))
            {
                request["model"] = JsonNode.Parse(model.GetRawText());
            }
            if (headers.Priority is { } priority)
            {
                request["priority"] = priority;
            }
            if (headers.TimeoutSeconds is { } timeout)
            {
                request["timeout_seconds"] = timeout;
            }
            // Where the task came from, and the client's end user (OpenAI's 'user'), kept with it.
            var origin = new JsonObject { ["endpoint"] = endpoint };
            if (user is not null)
            {
                origin["user"] = user;
            }
            request["metadata"] = new JsonObject { ["openai"] = origin };
            using var document = JsonDocument.Parse(request.ToJsonString());
            var errors = TaskRequestValidator.Validate(document.RootElement, out var task);
            if (errors.Count == 0)
            {
                return new OpenAiParsed(answer(new OpenAiRequest(task!)));
            }
            var (path, messages) = errors.First();
            var param = ParamOf(path);
            return OpenAiParsed.Fail(param, $"{param} {messages[0]}");
        }

        /// <summary>The OpenAI field (or header) a validation error's path stands for.</summary>
        private string ParamOf(string path)
        {
            if (path.StartsWith("input.", StringComparison.Ordinal))
            {
                var rest = path[6..];
                var end = rest.IndexOfAny(['.', '[']);
                var head = end < 0 ? rest : rest[..end];
                return Params.TryGetValue(head, out var param) ? param + rest[head.Length..] : rest;
            }
            return path switch
            {
                "priority" => OpenAiApi.PriorityHeader,
                "timeout_seconds" => OpenAiApi.TimeoutHeader,
                _ when path.StartsWith("metadata", StringComparison.Ordinal) => "user",
                _ => path,
            };
        }
    }
}
