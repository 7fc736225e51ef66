using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// Errors of the OpenAI-compatible API in OpenAI's shape,
/// <c>{"error": {"message", "type", "param", "code"}}</c>. Its endpoints answer ProblemDetails like
/// the rest of the API, carrying OpenAI's <c>type</c>, <c>param</c> and <c>code</c> as extensions;
/// <see cref="OpenAiProblemWriter"/> writes every problem of a request under <c>/v1</c> in OpenAI's
/// shape, so those the framework writes (authentication, the rate limiter, exceptions, status code
/// pages) have it too.
/// </summary>
public static class OpenAiErrors
{
    public const string InvalidRequest = "invalid_request_error";
    public const string ServerError = "server_error";

    /// <summary>What OpenAI calls a 429's type for a rate that is exceeded.</summary>
    public const string Requests = "requests";

    // The ProblemDetails extensions the writer reads.
    internal const string TypeKey = "openai_type";
    internal const string ParamKey = "openai_param";
    internal const string CodeKey = "openai_code";

    /// <summary>A 400 naming the field (or header) at fault.</summary>
    public static ProblemHttpResult Invalid(string? param, string message) =>
        Error(StatusCodes.Status400BadRequest, message, param: param);

    /// <summary>A 404: no live worker serves the model for the task type.</summary>
    public static ProblemHttpResult ModelNotFound(string model, string taskType) =>
        Error(StatusCodes.Status404NotFound,
            $"The model '{model}' does not exist here: no live worker serving {taskType} tasks has it loaded or declared (GET /v1/models lists those that do).",
            param: "model", code: "model_not_found");

    /// <summary>A problem in OpenAI's terms; <paramref name="type"/> defaults by status (see <see cref="TypeOf"/>).</summary>
    public static ProblemHttpResult Error(int status, string message, string? param = null, string? code = null, string? type = null)
    {
        var problem = new ProblemDetails { Status = status, Detail = message };
        problem.Extensions[TypeKey] = type ?? TypeOf(status);
        problem.Extensions[ParamKey] = param;
        problem.Extensions[CodeKey] = code;
        return TypedResults.Problem(problem);
    }

    /// <summary>OpenAI's error type for a status: <c>server_error</c> for 5xx, <c>requests</c> for 429, else <c>invalid_request_error</c>.</summary>
    public static string TypeOf(int status) => status switch
    {
        >= 500 => ServerError,
        StatusCodes.Status429TooManyRequests => Requests,
        _ => InvalidRequest,
    };

    /// <summary>The code of a problem that carries none: what a client tells such errors apart by.</summary>
    internal static string? CodeOf(int status) => status switch
    {
        StatusCodes.Status401Unauthorized => "invalid_api_key",
        StatusCodes.Status403Forbidden => "permission_denied",
        StatusCodes.Status413PayloadTooLarge => "request_too_large",
        StatusCodes.Status429TooManyRequests => "rate_limit_exceeded",
        StatusCodes.Status503ServiceUnavailable => "service_unavailable",
        _ => null,
    };

    /// <summary>The body of an error: <c>{"error": {...}}</c>.</summary>
    public sealed record Envelope(Body Error);

    public sealed record Body(string Message, string Type, string? Param, string? Code);

    /// <summary>The error a ProblemDetails stands for, under OpenAI's names.</summary>
    internal static Body From(ProblemDetails problem, HttpContext http)
    {
        var status = problem.Status ?? http.Response.StatusCode;
        var param = Extension(problem, ParamKey);
        string message;
        if (problem is HttpValidationProblemDetails { Errors.Count: > 0 } invalid)
        {
            // A ValidationProblem from the framework: its first field is the param.
            param ??= invalid.Errors.Keys.First();
            message = string.Join(" ", invalid.Errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}"));
        }
        else if (problem.Detail is null && http.GetEndpoint() is null && status is StatusCodes.Status404NotFound or StatusCodes.Status405MethodNotAllowed)
        {
            message = $"Invalid URL ({http.Request.Method} {http.Request.Path}): the OpenAI-compatible API serves GET /v1/models, " +
                "POST /v1/chat/completions, /v1/completions, /v1/images/generations and /v1/audio/speech.";
        }
        else
        {
            message = string.Join(" ", new[] { problem.Title, problem.Detail }.Where(t => !string.IsNullOrEmpty(t)));
        }
        return new Body(
            message.Length > 0 ? message : $"The request failed with status {status}.",
            Extension(problem, TypeKey) ?? TypeOf(status),
            param,
            Extension(problem, CodeKey) ?? (problem.Extensions.ContainsKey(CodeKey) ? null : CodeOf(status)));
    }

    private static string? Extension(ProblemDetails problem, string key) =>
        problem.Extensions.TryGetValue(key, out var value) ? value as string : null;
}

/// <summary>
/// Writes the problems of requests under <c>/v1</c> in OpenAI's error shape (see
/// <see cref="OpenAiErrors"/>), whatever the client accepts. Registered before
/// <c>AddProblemDetails</c>, so that the problem details service asks it first.
/// </summary>
public sealed class OpenAiProblemWriter : IProblemDetailsWriter
{
    public bool CanWrite(ProblemDetailsContext context) => OpenAiApi.Serves(context.HttpContext.Request);

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var http = context.HttpContext;
        var body = OpenAiErrors.From(context.ProblemDetails, http);
        return new ValueTask(http.Response.WriteAsJsonAsync(new OpenAiErrors.Envelope(body), TaskJson.Options, "application/json",
            http.RequestAborted));
    }

    /// <summary>An error as one server-sent event, for a stream that has begun: <c>event: error</c> and the error's JSON.</summary>
    internal static string Event(string? id, OpenAiErrors.Body error) =>
        (id is null ? "" : $"id: {id}\n") + "event: error\ndata: " + JsonSerializer.Serialize(new OpenAiErrors.Envelope(error), TaskJson.Options) + "\n\n";
}
