using System.Buffers.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskManager.Api.Domain;

/// <summary>
/// Validates a task request per task type and fills in defaults. Every bad field is reported,
/// by its path, in one pass, so a client fixes its request in one go.
/// </summary>
public static class TaskRequestValidator
{
    private static readonly HashSet<string> TaskFields =
        ["type", "input", "model", "priority", "timeout_seconds", "max_attempts", "metadata", "webhook", "webhook_events_filter",
            "start_deadline_seconds", "requirements"];

    /// <summary>The events a webhook may be sent for, and the default filter.</summary>
    public static readonly IReadOnlyList<string> WebhookEvents = ["start", "output", "logs", "completed"];
    public static readonly IReadOnlyList<string> DefaultWebhookEvents = ["completed"];
    private static readonly HashSet<string> RequirementFields = ["gpu_memory_mb", "gpu"];

    private static readonly HashSet<string> LlmFields =
        ["prompt", "messages", "max_tokens", "temperature", "top_p", "stop", "stream"];
    private static readonly HashSet<string> SdFields =
        ["prompt", "negative_prompt", "width", "height", "steps", "guidance_scale", "seed", "num_images"];
    private static readonly HashSet<string> TtsFields = ["text", "voice", "speed", "format"];
    private static readonly HashSet<string> ImageToTextFields = ["image", "prompt", "max_tokens"];
    private static readonly HashSet<string> MessageFields = ["role", "content"];
    private static readonly HashSet<string> MessageRoles = ["system", "user", "assistant"];

    public const int MaxPromptLength = 100_000;
    public const int MaxMessages = 1_000;
    public const int MaxStopSequences = 4;
    public const int MaxStopLength = 256;
    public const int MaxTokens = 8_192;
    public const int DefaultMaxTokens = 256;
    public const int MaxSdPromptLength = 2_000;
    public const int MaxTtsTextLength = 5_000;
    public const int MaxImageBytes = 10 * 1024 * 1024;
    public const int MaxVoiceLength = 100;

    /// <summary>Validates <paramref name="root"/>; on success <paramref name="request"/> is set and the result is empty.</summary>
    public static Dictionary<string, string[]> Validate(JsonElement root, out TaskRequest? request)
    {
        request = null;
        var errors = new Dictionary<string, List<string>>();
        var reader = new JsonFieldReader(errors);

        if (root.ValueKind != JsonValueKind.Object)
        {
            reader.Error("$", "The request body must be a JSON object.");
            return Freeze(errors);
        }

        reader.RejectUnknown(root, "", TaskFields);
        var type = reader.String(root, "", "type", 1, 64, required: true);
        if (type is not null && !TaskTypes.IsKnown(type))
        {
            reader.Error("type", $"must be one of {string.Join(", ", TaskTypes.All)} (got '{type}').");
            type = null;
        }

        JsonObject? input = null;
        if (reader.TryGet(root, "", "input", required: true, out var inputElement))
        {
            if (inputElement.ValueKind != JsonValueKind.Object)
            {
                reader.Error("input", "must be an object.");
            }
            else if (type is not null)
            {
                input = type switch
                {
                    TaskTypes.Llm => ValidateLlm(inputElement, reader),
                    TaskTypes.Sd => ValidateSd(inputElement, reader),
                    TaskTypes.Tts => ValidateTts(inputElement, reader),
                    _ => ValidateImageToText(inputElement, reader),
                };
            }
        }

        var model = reader.String(root, "", "model", 1, TaskLimits.MaxModelLength);
        if (model is not null && model.Any(char.IsControl))
        {
            reader.Error("model", "must not contain control characters.");
        }
        var priority = reader.Integer(root, "", "priority", TaskLimits.MinPriority, TaskLimits.MaxPriority);
        var timeout = reader.Integer(root, "", "timeout_seconds", TaskLimits.MinTimeoutSeconds, TaskLimits.MaxTimeoutSeconds);
        var attempts = reader.Integer(root, "", "max_attempts", TaskLimits.MinAttempts, TaskLimits.MaxAttempts);
        var startDeadline = reader.Integer(root, "", "start_deadline_seconds", TaskLimits.MinStartDeadlineSeconds, TaskLimits.MaxStartDeadlineSeconds);

        string? metadata = null;
        if (reader.TryGet(root, "", "metadata", required: false, out var metadataElement))
        {
            if (metadataElement.ValueKind != JsonValueKind.Object)
            {
                reader.Error("metadata", "must be an object.");
            }
            else
            {
                metadata = metadataElement.GetRawText();
                if (System.Text.Encoding.UTF8.GetByteCount(metadata) > TaskLimits.MaxMetadataBytes)
                {
                    reader.Error("metadata", $"must be at most {TaskLimits.MaxMetadataBytes} bytes of JSON.");
                }
                else if (MetadataProblem(metadataElement, "metadata", 1) is { } problem)
                {
                    reader.Error(problem.Path, problem.Message);
                }
            }
        }

        var webhook = reader.String(root, "", "webhook", 1, TaskLimits.MaxWebhookLength);
        Uri? uri = null;
        if (webhook is not null &&
            (!Uri.TryCreate(webhook, UriKind.Absolute, out uri) || uri.Scheme is not ("http" or "https")))
        {
            reader.Error("webhook", "must be an absolute http or https URL.");
        }
        else if (uri is { UserInfo.Length: > 0 })
        {
            reader.Error("webhook", "must not carry a user name or password; the tenant's signing secret authenticates deliveries.");
        }
        var webhookEvents = WebhookEventsFilter(root, reader, webhook is not null);

        TaskRequirements? requirements = null;
        if (reader.TryGet(root, "", "requirements", required: false, out var requirementsElement))
        {
            if (requirementsElement.ValueKind != JsonValueKind.Object)
            {
                reader.Error("requirements", "must be an object with gpu_memory_mb and/or gpu.");
            }
            else
            {
                reader.RejectUnknown(requirementsElement, "requirements", RequirementFields);
                var memory = reader.Integer(requirementsElement, "requirements", "gpu_memory_mb", 1, TaskLimits.MaxGpuMemoryMb);
                var gpu = reader.String(requirementsElement, "requirements", "gpu", 1, TaskLimits.MaxGpuPatternLength);
                if (gpu is not null && gpu.Any(char.IsControl))
                {
                    reader.Error("requirements.gpu", "must not contain control characters.");
                }
                requirements = memory is null && gpu is null ? null : new TaskRequirements(memory, gpu);
            }
        }

        if (reader.HasErrors || type is null || input is null)
        {
            return Freeze(errors);
        }

        request = new TaskRequest(
            type,
            input.ToJsonString(),
            model,
            (int)(priority ?? TaskLimits.DefaultPriority),
            (int)(timeout ?? TaskLimits.DefaultTimeoutSeconds),
            (int)(attempts ?? TaskLimits.DefaultMaxAttempts),
            metadata,
            webhook,
            requirements,
            (int?)startDeadline,
            webhook is null ? null : webhookEvents ?? DefaultWebhookEvents);
        return [];
    }

    /// <summary><c>webhook_events_filter</c>: a non-empty list of distinct events, only beside a webhook.</summary>
    private static IReadOnlyList<string>? WebhookEventsFilter(JsonElement root, JsonFieldReader reader, bool hasWebhook)
    {
        if (!reader.TryGet(root, "", "webhook_events_filter", required: false, out var filter) || filter.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        var expected = $"must be a list of distinct events, each one of {string.Join(", ", WebhookEvents)}.";
        if (!hasWebhook)
        {
            reader.Error("webhook_events_filter", "is given without a webhook.");
            return null;
        }
        if (filter.ValueKind != JsonValueKind.Array || filter.GetArrayLength() == 0)
        {
            reader.Error("webhook_events_filter", expected);
            return null;
        }
        var events = new List<string>();
        foreach (var item in filter.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String || item.GetString() is not { } name || !WebhookEvents.Contains(name) || events.Contains(name))
            {
                reader.Error("webhook_events_filter", expected);
                return null;
            }
            events.Add(name);
        }
        // In the one order deliveries are made in, whatever order the client listed them in.
        return WebhookEvents.Where(events.Contains).ToArray();
    }

    private static JsonObject ValidateLlm(JsonElement input, JsonFieldReader reader)
    {
        const string p = "input";
        reader.RejectUnknown(input, p, LlmFields);
        var result = new JsonObject();
        var hasPrompt = reader.TryGet(input, p, "prompt", required: false, out _);
        var hasMessages = reader.TryGet(input, p, "messages", required: false, out var messages);
        if (hasPrompt == hasMessages)
        {
            reader.Error("input.prompt", "give either 'prompt' or 'messages', not both and not neither.");
        }
        if (hasPrompt)
        {
            JsonFieldReader.Put(result, "prompt", reader.String(input, p, "prompt", 1, MaxPromptLength));
        }
        if (hasMessages)
        {
            result["messages"] = ValidateMessages(messages, reader);
        }
        result["max_tokens"] = reader.Integer(input, p, "max_tokens", 1, MaxTokens) ?? DefaultMaxTokens;
        JsonFieldReader.Put(result, "temperature", reader.Number(input, p, "temperature", 0, 2));
        JsonFieldReader.Put(result, "top_p", reader.Number(input, p, "top_p", 0, 1));
        JsonFieldReader.Put(result, "stop", ValidateStop(input, reader));
        result["stream"] = reader.Boolean(input, p, "stream") ?? false;
        return result;
    }

    private static JsonArray? ValidateMessages(JsonElement messages, JsonFieldReader reader)
    {
        if (messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() is 0 or > MaxMessages)
        {
            reader.Error("input.messages", $"must be a list of 1 to {MaxMessages} messages.");
            return null;
        }
        var list = new JsonArray();
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var path = $"input.messages[{index++}]";
            if (message.ValueKind != JsonValueKind.Object)
            {
                reader.Error(path, "must be an object with 'role' and 'content'.");
                continue;
            }
            reader.RejectUnknown(message, path, MessageFields);
            var role = reader.String(message, path, "role", 1, 16, required: true);
            if (role is not null && !MessageRoles.Contains(role))
            {
                reader.Error($"{path}.role", "must be system, user or assistant.");
            }
            var content = reader.String(message, path, "content", 0, MaxPromptLength, required: true);
            list.Add(new JsonObject { ["role"] = role, ["content"] = content });
        }
        return list;
    }

    private static JsonArray? ValidateStop(JsonElement input, JsonFieldReader reader)
    {
        if (!reader.TryGet(input, "input", "stop", required: false, out var stop))
        {
            return null;
        }
        // A single string is accepted as a list of one, as the OpenAI API does.
        var items = stop.ValueKind == JsonValueKind.String ? [stop] : stop.ValueKind == JsonValueKind.Array
            ? stop.EnumerateArray().ToArray()
            : null;
        if (items is null || items.Length > MaxStopSequences ||
            items.Any(s => s.ValueKind != JsonValueKind.String || s.GetString()!.Length is 0 or > MaxStopLength))
        {
            reader.Error("input.stop", $"must be a string or a list of at most {MaxStopSequences} strings of 1 to {MaxStopLength} characters.");
            return null;
        }
        return new JsonArray(items.Select(s => (JsonNode?)JsonValue.Create(s.GetString())).ToArray());
    }

    private static JsonObject ValidateSd(JsonElement input, JsonFieldReader reader)
    {
        const string p = "input";
        reader.RejectUnknown(input, p, SdFields);
        var result = new JsonObject
        {
            ["prompt"] = reader.String(input, p, "prompt", 1, MaxSdPromptLength, required: true),
        };
        JsonFieldReader.Put(result, "negative_prompt", reader.String(input, p, "negative_prompt", 0, MaxSdPromptLength));
        foreach (var side in (string[])["width", "height"])
        {
            var size = reader.Integer(input, p, side, 64, 2048);
            if (size is not null && size % 8 != 0)
            {
                reader.Error($"input.{side}", $"must be a multiple of 8 (got {size}).");
            }
            result[side] = size ?? 512;
        }
        result["steps"] = reader.Integer(input, p, "steps", 1, 150) ?? 30;
        JsonFieldReader.Put(result, "guidance_scale", reader.Number(input, p, "guidance_scale", 0, 30));
        JsonFieldReader.Put(result, "seed", reader.Integer(input, p, "seed", 0, uint.MaxValue));
        result["num_images"] = reader.Integer(input, p, "num_images", 1, 4) ?? 1;
        return result;
    }

    private static JsonObject ValidateTts(JsonElement input, JsonFieldReader reader)
    {
        const string p = "input";
        reader.RejectUnknown(input, p, TtsFields);
        var result = new JsonObject
        {
            ["text"] = reader.String(input, p, "text", 1, MaxTtsTextLength, required: true),
        };
        JsonFieldReader.Put(result, "voice", reader.String(input, p, "voice", 1, MaxVoiceLength));
        result["speed"] = reader.Number(input, p, "speed", 0.25, 4) ?? 1.0;
        var format = reader.String(input, p, "format", 1, 8);
        if (format is not null and not ("wav" or "mp3"))
        {
            reader.Error("input.format", $"must be wav or mp3 (got '{format}').");
        }
        result["format"] = format ?? "wav";
        return result;
    }

    private static JsonObject ValidateImageToText(JsonElement input, JsonFieldReader reader)
    {
        const string p = "input";
        reader.RejectUnknown(input, p, ImageToTextFields);
        var result = new JsonObject();
        // Base64 of 10 MiB is about 13.4 M characters; anything longer cannot be valid.
        var image = reader.String(input, p, "image", 1, (MaxImageBytes / 3 * 4) + 4 + 256, required: true);
        if (image is not null)
        {
            var payload = image.StartsWith("data:", StringComparison.Ordinal) && image.IndexOf(',') is var comma and > 0
                ? image[(comma + 1)..]
                : image;
            if (!Base64.IsValid(payload, out var decodedLength))
            {
                reader.Error("input.image", "must be base64 (optionally a data: URL).");
            }
            else if (decodedLength > MaxImageBytes)
            {
                reader.Error("input.image", $"must decode to at most {MaxImageBytes} bytes (got {decodedLength}).");
            }
            result["image"] = image;
        }
        JsonFieldReader.Put(result, "prompt", reader.String(input, p, "prompt", 1, MaxSdPromptLength));
        result["max_tokens"] = reader.Integer(input, p, "max_tokens", 1, MaxTokens) ?? DefaultMaxTokens;
        return result;
    }

    public const int MaxMetadataDepth = 8;
    public const int MaxMetadataString = 4096;
    public const int MaxMetadataName = 256;

    /// <summary>The first place where metadata nests too deep or holds too long a string or name.</summary>
    private static (string Path, string Message)? MetadataProblem(JsonElement element, string path, int depth)
    {
        if (depth > MaxMetadataDepth)
        {
            return (path, $"nests deeper than {MaxMetadataDepth} levels.");
        }
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    if (property.Name.Length > MaxMetadataName)
                    {
                        return (path, $"has a field name longer than {MaxMetadataName} characters.");
                    }
                    if (MetadataProblem(property.Value, $"{path}.{property.Name}", depth + 1) is { } inner)
                    {
                        return inner;
                    }
                }
                return null;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (MetadataProblem(item, $"{path}[{index++}]", depth + 1) is { } inner)
                    {
                        return inner;
                    }
                }
                return null;
            case JsonValueKind.String:
                return element.GetString()!.Length > MaxMetadataString
                    ? (path, $"must be at most {MaxMetadataString} characters long.")
                    : null;
            default:
                return null;
        }
    }

    private static Dictionary<string, string[]> Freeze(Dictionary<string, List<string>> errors) =>
        errors.ToDictionary(e => e.Key, e => e.Value.ToArray());
}
