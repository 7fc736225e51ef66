using Microsoft.AspNetCore.Http.HttpResults;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary><c>GET /api/health</c>: readiness, with Redis's status and round-trip time.</summary>
public static class HealthApi
{
    public static RouteHandlerBuilder MapHealthApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/health", Check).WithTags("Health").WithSummary("Readiness with Redis status");

    public sealed record RedisHealth(string Status, double? LatencyMs, string? Error);

    public sealed record HealthReport(string Status, RedisHealth Redis);

    private static async Task<Results<Ok<HealthReport>, JsonHttpResult<HealthReport>>> Check(IStoreHealth store, HttpContext context)
    {
        var health = await store.CheckAsync(TimeSpan.FromSeconds(2));
        if (health.Up)
        {
            return TypedResults.Ok(new HealthReport("healthy", new RedisHealth("up", health.LatencyMs, null)));
        }
        context.Response.Headers.RetryAfter = ErrorHandling.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return TypedResults.Json(new HealthReport("unhealthy", new RedisHealth("down", null, health.Error)),
            statusCode: StatusCodes.Status503ServiceUnavailable);
    }
}
