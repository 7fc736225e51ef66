using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// The body of <c>POST /api/tasks</c>, read and validated by hand rather than by model binding,
/// so that broken JSON, a wrong type or a bad value each get a 400 that names the field.
/// </summary>
public sealed class SubmitTaskBody : IValidatable
{
    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        MaxDepth = 64,
        AllowDuplicateProperties = false,
    };

    private readonly Dictionary<string, string[]> errors;

    private SubmitTaskBody(TaskRequest? request, Dictionary<string, string[]> errors)
    {
        Request = request;
        this.errors = errors;
    }

    /// <summary>Set when <see cref="Validate"/> is empty.</summary>
    public TaskRequest? Request { get; }

    public IDictionary<string, string[]> Validate() => errors;

    public static async ValueTask<SubmitTaskBody?> BindAsync(HttpContext context)
    {
        var limit = context.RequestServices.GetRequiredService<IOptions<TaskManagerOptions>>().Value.MaxTaskRequestBytes;
        return await ReadJsonAsync(context, limit,
            root => new SubmitTaskBody(TaskRequestValidator.Validate(root, out var request) is var problems ? request : null, problems),
            message => Invalid("$", message));
    }

    /// <summary>
    /// Reads a JSON request body of at most <paramref name="limit"/> bytes (413 past it, 415 for
    /// another content type) and hands its root to <paramref name="read"/>; broken JSON, or strings
    /// that are not valid UTF-8, go to <paramref name="invalid"/> with a message.
    /// </summary>
    internal static async ValueTask<T> ReadJsonAsync<T>(HttpContext context, long limit, Func<JsonElement, T> read, Func<string, T> invalid)
    {
        if (context.Request.ContentLength > limit)
        {
            throw new BadHttpRequestException($"The request body is larger than {limit} bytes.", StatusCodes.Status413PayloadTooLarge);
        }
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limit;
        }
        if (!context.Request.HasJsonContentType() && context.Request.ContentType is not null)
        {
            throw new BadHttpRequestException("The request body must be application/json.", StatusCodes.Status415UnsupportedMediaType);
        }

        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, DocumentOptions, context.RequestAborted);
            return read(document.RootElement);
        }
        catch (JsonException ex)
        {
            return invalid($"The body is not valid JSON: {ex.Message}");
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json checks a string's UTF-8 (and lone surrogates) when it is read, not parsed.
            return invalid(InvalidUtf8);
        }
    }

    internal const string InvalidUtf8 = "The body's strings must be valid UTF-8 without lone surrogates.";

    private static SubmitTaskBody Invalid(string field, string message) =>
        new(null, new Dictionary<string, string[]> { [field] = [message] });

    /// <summary>The W3C traceparent of the submitting request, stored with the task for the worker.</summary>
    public static string? TraceParent() => Activity.Current?.Id;
}
