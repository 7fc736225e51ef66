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
/// larger body (turned into a ProblemDetails by <see cref="ErrorHandling"/>).
/// </summary>
public sealed class BodySizeLimitMiddleware(RequestDelegate next, IOptions<TaskManagerOptions> options)
{
    public Task InvokeAsync(HttpContext context)
    {
        var feature = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is { IsReadOnly: false })
        {
            var kind = context.GetEndpoint()?.Metadata.GetMetadata<BodySizeLimit>()?.Kind;
            feature.MaxRequestBodySize = kind switch
            {
                BodySizeLimit.Output => options.Value.MaxOutputBytes,
                BodySizeLimit.Batch => options.Value.MaxBatchRequestBytes,
                _ => options.Value.MaxTaskRequestBytes,
            };
        }
        return next(context);
    }
}
