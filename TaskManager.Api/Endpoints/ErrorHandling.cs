using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// Turns exceptions into RFC 9457 ProblemDetails: bad requests that the framework detects
/// (unreadable JSON, an oversized body) keep their 4xx; any error of the store is a 503 naming
/// its cause, with Retry-After. Anything else is a bug and is logged as one.
/// </summary>
public sealed partial class ErrorHandling(IProblemDetailsService problems, IStoreHealth store, ILogger<ErrorHandling> logger) : IExceptionHandler
{
    public const int RetryAfterSeconds = 1;

    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        var fault = store.Describe(exception);
        var (status, title, detail) = exception switch
        {
            BadHttpRequestException bad => (bad.StatusCode, "The request is not valid.", Describe(bad)),
            JsonException json => (StatusCodes.Status400BadRequest, "The request is not valid.", json.Message),
            _ when fault is not null => (StatusCodes.Status503ServiceUnavailable, fault.Kind switch
            {
                StoreFaultKind.Unavailable => "The task store is unavailable.",
                StoreFaultKind.Starting => "The task store is starting.",
                _ => "The task store refused the request.",
            }, fault.Detail),
            OperationCanceledException when context.RequestAborted.IsCancellationRequested =>
                (499, "The client closed the request.", null),
            _ => (StatusCodes.Status500InternalServerError, "An unexpected error occurred.", null),
        };
        if (status >= 500)
        {
            LogFailure(logger, context.Request.Method, context.Request.Path, exception);
        }
        if (status == StatusCodes.Status413PayloadTooLarge)
        {
            // The rest of the body is not read: the connection closes after this answer, and says
            // so, so that a client does not send its next request down a closing connection.
            context.Response.Headers.Connection = "close";
        }
        if (status == StatusCodes.Status503ServiceUnavailable)
        {
            context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        context.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        });
    }

    // The framework's message for a body that failed to bind names the parameter and the JSON path.
    private static string Describe(BadHttpRequestException bad) =>
        bad.InnerException is JsonException json ? $"{bad.Message} {json.Message}" : bad.Message;

    [LoggerMessage(Level = LogLevel.Error, Message = "{Method} {Path} failed")]
    private static partial void LogFailure(ILogger logger, string method, string path, Exception exception);
}
