using System.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using StackExchange.Redis;

namespace TaskManager.Api.Endpoints;

/// <summary><c>GET /api/health</c>: readiness, with Redis's status and round-trip time.</summary>
public static class HealthApi
{
    public static RouteHandlerBuilder MapHealthApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/health", Check).WithTags("Health").WithSummary("Readiness with Redis status");

    public sealed record RedisHealth(string Status, double? LatencyMs, string? Error);

    public sealed record HealthReport(string Status, RedisHealth Redis);

    private static async Task<Results<Ok<HealthReport>, JsonHttpResult<HealthReport>>> Check(IConnectionMultiplexer redis, HttpContext context)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            await redis.GetDatabase().PingAsync().WaitAsync(TimeSpan.FromSeconds(2));
            return TypedResults.Ok(new HealthReport("healthy", new RedisHealth("up", clock.Elapsed.TotalMilliseconds, null)));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            context.Response.Headers.RetryAfter = ErrorHandling.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return TypedResults.Json(new HealthReport("unhealthy", new RedisHealth("down", null, ex.Message)),
                statusCode: StatusCodes.Status503ServiceUnavailable);
        }
    }
}
