using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Forms;
using TaskManager.Web.Services;

namespace TaskManager.Web.Components.Pages;

/// <summary>
/// A form per task type. The console does not validate what the API validates: it sends what was
/// typed (a number where it reads as one) and shows the API's 400 beside each field it names.
/// </summary>
public partial class Submit
{
    private const long MaxImageBytes = 10 * 1024 * 1024;

    [SupplyParameterFromQuery]
    private string? Type { get; set; }

    private readonly SubmitForm form = new();
    private IReadOnlyDictionary<string, string[]> errors = new Dictionary<string, string[]>();
    private string? summary;
    private bool busy, advanced;

    private static readonly HashSet<string> Placed =
    [
        "input.prompt", "input.negative_prompt", "input.width", "input.height", "input.steps", "input.num_images",
        "input.text", "input.voice", "input.format", "input.image", "input.max_tokens", "input.temperature",
        "model", "priority", "timeout_seconds", "max_attempts", "webhook", "metadata",
    ];

    private IEnumerable<KeyValuePair<string, string[]>> Unplaced => errors.Where(e => !Placed.Contains(e.Key));

    protected override void OnParametersSet() => Type = TaskStatuses.Types.Contains(Type) ? Type : "llm";

    private void ChangeType(ChangeEventArgs e)
    {
        errors = new Dictionary<string, string[]>();
        summary = null;
        Navigation.NavigateTo(Navigation.GetUriWithQueryParameter("type", e.Value?.ToString()));
    }

    private async Task ReadImageAsync(InputFileChangeEventArgs e)
    {
        try
        {
            using var stream = e.File.OpenReadStream(MaxImageBytes);
            using var buffer = new MemoryStream();
            await stream.CopyToAsync(buffer);
            form.Image = $"data:{e.File.ContentType};base64,{Convert.ToBase64String(buffer.ToArray())}";
        }
        catch (IOException)
        {
            errors = new Dictionary<string, string[]> { ["input.image"] = ["The image is over 10 MiB."] };
        }
    }

    private async Task SubmitAsync()
    {
        var request = new JsonObject { ["type"] = Type };
        var input = new JsonObject();
        var local = new Dictionary<string, string[]>();
        switch (Type)
        {
            case "sd":
                Add(input, "prompt", form.Prompt);
                Add(input, "negative_prompt", form.NegativePrompt);
                Add(input, "width", form.Width, number: true);
                Add(input, "height", form.Height, number: true);
                Add(input, "steps", form.Steps, number: true);
                Add(input, "num_images", form.NumImages, number: true);
                break;
            case "tts":
                Add(input, "text", form.Text);
                Add(input, "voice", form.Voice);
                Add(input, "format", form.Format);
                break;
            case "image_to_text":
                Add(input, "image", form.Image);
                Add(input, "prompt", form.Prompt);
                break;
            default:
                Add(input, "prompt", form.Prompt);
                Add(input, "max_tokens", form.MaxTokens, number: true);
                Add(input, "temperature", form.Temperature, number: true);
                input["stream"] = form.Stream;
                break;
        }
        request["input"] = input;
        Add(request, "model", form.Model);
        Add(request, "priority", form.Priority, number: true);
        Add(request, "timeout_seconds", form.TimeoutSeconds, number: true);
        Add(request, "max_attempts", form.MaxAttempts, number: true);
        Add(request, "webhook", form.Webhook);
        if (!string.IsNullOrWhiteSpace(form.Metadata))
        {
            try
            {
                request["metadata"] = JsonNode.Parse(form.Metadata);
            }
            catch (JsonException)
            {
                local["metadata"] = ["is not JSON."];
            }
        }
        if (local.Count > 0)
        {
            (errors, summary, advanced) = (local, "The request is not valid.", true);
            return;
        }

        busy = true;
        try
        {
            var result = await Api.SubmitAsync(request);
            if (result.Value is { } task)
            {
                Navigation.NavigateTo($"/tasks/{task.Id}");
                return;
            }
            var problem = result.Problem!;
            errors = problem.Errors;
            summary = problem.Errors.Count > 0 ? $"The API refused the request: {problem.Title}" : $"The API refused the request: {problem}";
            advanced = errors.Keys.Any(k => !k.StartsWith("input", StringComparison.Ordinal));
        }
        finally
        {
            busy = false;
        }
    }

    /// <summary>A field as typed; a number when it reads as one (else the text, for the API to refuse).</summary>
    private static void Add(JsonObject target, string name, string? value, bool number = false)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return;
        }
        target[name] = number && decimal.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var n)
            ? JsonValue.Create(n)
            : JsonValue.Create(value);
    }

    private sealed class SubmitForm
    {
        public string? Prompt { get; set; }
        public string? NegativePrompt { get; set; }
        public string? Width { get; set; }
        public string? Height { get; set; }
        public string? Steps { get; set; }
        public string? NumImages { get; set; }
        public string? Text { get; set; }
        public string? Voice { get; set; }
        public string? Format { get; set; } = "wav";
        public string? Image { get; set; }
        public string? MaxTokens { get; set; }
        public string? Temperature { get; set; }
        public bool Stream { get; set; } = true;
        public string? Model { get; set; }
        public string? Priority { get; set; }
        public string? TimeoutSeconds { get; set; }
        public string? MaxAttempts { get; set; }
        public string? Webhook { get; set; }
        public string? Metadata { get; set; }
    }
}
