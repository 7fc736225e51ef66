using System.CommandLine;
using Spectre.Console;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskManager.Cli.Commands;

/// <summary>
/// <c>tm submit TYPE</c>: builds a task request from typed options (or <c>--input</c>), sends it,
/// and then, as asked, returns at once, waits for the end (<c>--wait</c>) or shows the task's
/// output as it is made (<c>--follow</c>). <c>tm submit --file</c> sends a JSON Lines file in batches.
/// </summary>
public static class SubmitCommand
{
    public static readonly string[] Types = ["llm", "sd", "tts", "image_to_text"];

    private static readonly Argument<string?> Type = new("TYPE")
    {
        Description = "The task type: llm, sd, tts or image_to_text",
        Arity = ArgumentArity.ZeroOrOne,
    };

    private static readonly Option<string?> Prompt = new("--prompt") { Description = "input.prompt (llm, sd, image_to_text)" };
    private static readonly Option<string?> Text = new("--text") { Description = "input.text (tts)" };
    private static readonly Option<FileInfo?> Image = new("--image") { Description = "A file sent as input.image, base64 (image_to_text)" };
    private static readonly Option<string?> Input = new("--input") { Description = "The whole input as a JSON object; typed options then add to it" };
    private static readonly Option<string[]> Params = new("--param")
    {
        Description = "Other input fields, KEY=VALUE (VALUE read as JSON when it parses: max_tokens=64, stream=true); repeatable",
        AllowMultipleArgumentsPerToken = true,
    };
    private static readonly Option<string?> Model = new("--model") { Description = "The model the task needs" };
    private static readonly Option<int?> Priority = new("--priority") { Description = "0 to 9, higher first (the API's default: 5)" };
    private static readonly Option<int?> TimeoutSeconds = new("--timeout") { Description = "Seconds a run may take (timeout_seconds)" };
    private static readonly Option<int?> MaxAttempts = new("--max-attempts") { Description = "How many attempts before it fails" };
    private static readonly Option<string?> Webhook = new("--webhook") { Description = "A URL told of the task's end" };
    private static readonly Option<int?> StartDeadline = new("--start-deadline") { Description = "Seconds it may wait to start before it expires (start_deadline_seconds)" };
    private static readonly Option<string[]> Metadata = new("--metadata")
    {
        Description = "A JSON object, or KEY=VALUE pairs (VALUE read as JSON when it parses); repeatable",
        AllowMultipleArgumentsPerToken = true,
    };
    private static readonly Option<bool> WaitOption = new("--wait") { Description = "Wait for the end; exit 0 only if the task succeeded" };
    private static readonly Option<bool> Follow = new("--follow") { Description = "Show output chunks as they come, progress, and the final status" };
    private static readonly Option<bool> Logs = new("--logs") { Description = "With --follow: show the task's log lines too (on stderr)" };
    internal static readonly Option<bool> CancelOnInterrupt = new("--cancel-on-interrupt")
    {
        Description = "With --follow and no terminal to ask on: Ctrl+C (SIGINT) cancels the task (else it is left running)",
    };
    private static readonly Option<FileInfo?> File = new("--file") { Description = "A JSON Lines file of task requests, sent in batches of 1,000; prints the ids" };

    public static IEnumerable<Command> Build()
    {
        var submit = new Command("submit", "Submit a task (or a file of them with --file)")
        {
            Type, Prompt, Text, Image, Input, Params, Model, Priority, TimeoutSeconds, MaxAttempts, Webhook, StartDeadline, Metadata,
            WaitOption, Follow, Logs, CancelOnInterrupt, File,
        };
        Type.AcceptOnlyFromAmong(Types);
        submit.WithAction(async (context, cancel) =>
        {
            if (context.Value(File) is { } file)
            {
                if (context.Value(Type) is not null || context.Value(WaitOption) || context.Value(Follow))
                {
                    throw new UsageException("--file takes the whole requests from the file: give no TYPE, --wait or --follow with it.");
                }
                return await BatchSubmit.RunAsync(context, file, cancel);
            }
            if (context.Value(WaitOption) && context.Value(Follow))
            {
                throw new UsageException("Give --wait or --follow, not both.");
            }
            var request = Request(context);
            var follow = context.Value(Follow);
            if (follow && request["type"]!.GetValue<string>() == "llm" && request["input"] is JsonObject input && !input.ContainsKey("stream"))
            {
                input["stream"] = true; // so that the tokens come as they are made
            }
            var created = await context.Api.SendAsync(HttpMethod.Post, "api/tasks", request.ToJsonString(), cancel: cancel);
            var task = ApiClient.Parse(created);
            var id = task.GetProperty("id").GetString()!;
            if (follow)
            {
                return await new Follower(context, id, context.Value(CancelOnInterrupt), context.Value(Logs)).RunAsync(created);
            }
            if (context.Value(WaitOption))
            {
                return await TaskView.WaitAsync(context, id, cancel);
            }
            if (context.Json)
            {
                Output.Json(created);
            }
            else
            {
                Output.Out.MarkupLineInterpolated($"[bold]{id}[/] {task.GetProperty("status").GetString()}");
            }
            return ExitCodes.Done;
        });
        yield return submit;
    }

    /// <summary>The task request the options describe.</summary>
    private static JsonObject Request(CommandContext context)
    {
        var type = context.Value(Type) ?? throw new UsageException("Name the task type (tm submit llm|sd|tts|image_to_text ...), or give --file.");
        var input = context.Value(Input) is { } json ? JsonObjectFrom(json, "--input") : [];
        void Set(string field, string? value, string option, params string[] types)
        {
            if (value is null)
            {
                return;
            }
            if (!types.Contains(type))
            {
                throw new UsageException($"{option} is not an input of {type} tasks (it is of {string.Join(", ", types)}).");
            }
            input[field] = value;
        }
        Set("prompt", context.Value(Prompt), "--prompt", "llm", "sd", "image_to_text");
        Set("text", context.Value(Text), "--text", "tts");
        if (context.Value(Image) is { } image)
        {
            if (!image.Exists)
            {
                throw new UsageException($"--image: there is no file {image.FullName}.");
            }
            Set("image", Convert.ToBase64String(System.IO.File.ReadAllBytes(image.FullName)), "--image", "image_to_text");
        }
        foreach (var (key, value) in Pairs(context.Value(Params) ?? [], "--param"))
        {
            input[key] = value;
        }

        var request = new JsonObject { ["type"] = type, ["input"] = input };
        void Add(string field, JsonNode? value)
        {
            if (value is not null)
            {
                request[field] = value;
            }
        }
        Add("model", context.Value(Model));
        Add("priority", context.Value(Priority));
        Add("timeout_seconds", context.Value(TimeoutSeconds));
        Add("max_attempts", context.Value(MaxAttempts));
        Add("webhook", context.Value(Webhook));
        Add("start_deadline_seconds", context.Value(StartDeadline));
        if (context.Value(Metadata) is { Length: > 0 } metadata)
        {
            request["metadata"] = MetadataFrom(metadata);
        }
        return request;
    }

    /// <summary>
    /// <c>--metadata</c>: each value a JSON object (<c>'{"team":"a"}'</c>) or a KEY=VALUE pair
    /// (<c>team=a</c>, <c>sim='{"duration_ms":2000}'</c>); the later ones win.
    /// </summary>
    internal static JsonObject MetadataFrom(IEnumerable<string> values)
    {
        var metadata = new JsonObject();
        foreach (var value in values)
        {
            if (value.TrimStart().StartsWith('{'))
            {
                foreach (var (key, node) in JsonObjectFrom(value, "--metadata").ToArray())
                {
                    metadata[key] = node?.DeepClone();
                }
            }
            else
            {
                foreach (var (key, node) in Pairs([value], "--metadata"))
                {
                    metadata[key] = node;
                }
            }
        }
        return metadata;
    }

    private static IEnumerable<(string Key, JsonNode? Value)> Pairs(IEnumerable<string> values, string option)
    {
        foreach (var pair in values)
        {
            var equals = pair.IndexOf('=');
            if (equals <= 0)
            {
                throw new UsageException($"{option} '{pair}': expected KEY=VALUE.");
            }
            yield return (pair[..equals], ValueFrom(pair[(equals + 1)..]));
        }
    }

    /// <summary>A value that parses as JSON is taken as JSON (a number, true, an object); anything else as a string.</summary>
    internal static JsonNode? ValueFrom(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return JsonValue.Create(text);
        }
    }

    private static JsonObject JsonObjectFrom(string json, string option)
    {
        try
        {
            return JsonNode.Parse(json) as JsonObject ?? throw new UsageException($"{option} must be a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new UsageException($"{option} is not valid JSON: {ex.Message}");
        }
    }
}
