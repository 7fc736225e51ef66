using System.Text.Json;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// <c>POST /v1/images/generations</c> (an <c>sd</c> task) and <c>POST /v1/audio/speech</c> (a
/// <c>tts</c> task): each waits for its task's result and answers with its artifacts, images as
/// base64 or as absolute URLs (fetched with the client's key), speech as the audio's bytes.
/// </summary>
public static class OpenAiMedia
{
    internal static Task<IResult> ImagesAsync(HttpContext http) => OpenAiApi.RunAsync(http, TaskTypes.Sd, OpenAiBodies.Images, ImagesOfAsync);

    internal static Task<IResult> SpeechAsync(HttpContext http) => OpenAiApi.RunAsync(http, TaskTypes.Tts, OpenAiBodies.Speech, SpeechOfAsync);

    private static async Task<IResult> ImagesOfAsync(OpenAiCall call, TaskRecord task)
    {
        using var output = JsonDocument.Parse(task.OutputJson ?? "{}");
        var links = TaskLinks.Of(call.Http.Request);
        var data = new List<ImageDto>();
        if (output.RootElement.TryGetProperty("images", out var images) && images.ValueKind == JsonValueKind.Array)
        {
            foreach (var image in images.EnumerateArray())
            {
                if (ArtifactName(call, image) is not { } name)
                {
                    continue;
                }
                if (call.Request.AsUrl)
                {
                    data.Add(new ImageDto(links.Artifact(call.Id, name), null));
                }
                else if (await call.Inspector.GetArtifactAsync(call.Id, name) is { } found)
                {
                    data.Add(new ImageDto(null, Convert.ToBase64String(found.Data)));
                }
            }
        }
        return TypedResults.Json(new ImagesDto(call.Created, data), TaskJson.Options);
    }

    private static async Task<IResult> SpeechOfAsync(OpenAiCall call, TaskRecord task)
    {
        using var output = JsonDocument.Parse(task.OutputJson ?? "{}");
        var audio = output.RootElement.TryGetProperty("audio", out var a) && ArtifactName(call, a) is { } name
            ? await call.Inspector.GetArtifactAsync(call.Id, name)
            : null;
        return audio is { } found
            ? TypedResults.File(found.Data, found.ContentType)
            : OpenAiErrors.Error(StatusCodes.Status500InternalServerError, $"Task {call.Id} succeeded without audio.", code: "no_audio");
    }

    /// <summary>The name of the task's artifact an output entry points to (<c>{"url": "/api/tasks/{id}/artifacts/{name}"}</c>).</summary>
    private static string? ArtifactName(OpenAiCall call, JsonElement entry)
    {
        var prefix = Artifacts.Url(call.Id, "");
        return entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("url", out var url) && url.ValueKind == JsonValueKind.String
            && url.GetString() is { } path && path.StartsWith(prefix, StringComparison.Ordinal) && Artifacts.IsName(path[prefix.Length..])
            ? path[prefix.Length..]
            : null;
    }

    /// <summary>One image: its URL, or its bytes in base64.</summary>
    public sealed record ImageDto(
        [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] string? Url,
        [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] string? B64Json);

    public sealed record ImagesDto(long Created, IReadOnlyList<ImageDto> Data);
}
