using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace TaskManager.Api.Endpoints;

/// <summary>Endpoint metadata: which configured body limit applies (the default is the task request limit).</summary>
public sealed record BodySizeLimit(string Kind)
{
    public const string Output = "output";
    public const string Batch = "batch";
}

/// <summary>
/// Applies each endpoint's body limit before its body is read; Kestrel then answers 413 for a
/// larger body (turned into a ProblemDetails by <see cref="ErrorHandling"/>). A body that says
/// beforehand (Content-Length) that it is over the limit, by up to <see cref="DrainBytes"/>, is
/// read to its end and dropped before the 413: a gateway that is still sending it (nginx buffers
/// the whole body, then streams it) would otherwise see the connection close under it, and answer
/// its own 502 in place of the API's 413. The middleware runs after authorization, so only a
/// caller with a key is read this far.
/// </summary>
public sealed class BodySizeLimitMiddleware(RequestDelegate next, IOptions<TaskManagerOptions> options)
{
    /// <summary>The most of an oversized body read and dropped; a larger one is cut off.</summary>
    public const long DrainBytes = 32L * 1024 * 1024;

    private static readonly TimeSpan DrainTime = TimeSpan.FromSeconds(10);

    public async Task InvokeAsync(HttpContext context)
    {
        var feature = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is { IsReadOnly: false })
        {
            var kind = context.GetEndpoint()?.Metadata.GetMetadata<BodySizeLimit>()?.Kind;
            var limit = kind switch
            {
                BodySizeLimit.Output => options.Value.MaxOutputBytes,
                BodySizeLimit.Batch => options.Value.MaxBatchRequestBytes,
                _ => options.Value.MaxTaskRequestBytes,
            };
            if (context.Request.ContentLength is { } length && length > limit && length <= DrainBytes)
            {
                feature.MaxRequestBodySize = DrainBytes;
                using var drain = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
                drain.CancelAfter(DrainTime);
                try
                {
                    await context.Request.Body.CopyToAsync(Stream.Null, drain.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException)
                {
                    // Too slow, or gone: the 413 goes as it would have, and the connection closes.
                }
                throw new BadHttpRequestException($"Request body too large. The max request body size is {limit} bytes.",
                    StatusCodes.Status413PayloadTooLarge);
            }
            feature.MaxRequestBodySize = limit;
        }
        await next(context);
    }
}
