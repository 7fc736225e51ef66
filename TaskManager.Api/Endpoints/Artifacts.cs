using System.Net.Http.Headers;
using System.Text.RegularExpressions;

namespace TaskManager.Api.Endpoints;

/// <summary>Rules for artifact names, content types and URLs.</summary>
public static partial class Artifacts
{
    public static bool IsName(string? name) => name is not null && NamePattern().IsMatch(name);

    /// <summary>The media type of an upload (parameters dropped), or null when it is not one.</summary>
    public static string? ContentType(string? header) =>
        header is not null && MediaTypeHeaderValue.TryParse(header, out var parsed) && parsed.MediaType is { } type &&
        type.Count(c => c == '/') == 1 && !type.StartsWith('/') && !type.EndsWith('/')
            ? type.ToLowerInvariant()
            : null;

    public static string Url(string taskId, string name) => $"/api/tasks/{taskId}/artifacts/{name}";

    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")]
    private static partial Regex NamePattern();
}
