using System.Globalization;
using System.Threading.RateLimiting;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace TaskManager.Api.Security;

/// <summary>Keys, roles, rate limits and the Hangfire dashboard's door.</summary>
public static class SecuritySetup
{
    public const string PerKeyRateLimit = "per-key";

    public static IServiceCollection AddTaskManagerSecurity(this IServiceCollection services)
    {
        services.AddSingleton<Keyring>();
        services.AddOptions<Microsoft.AspNetCore.Builder.ForwardedHeadersOptions>()
            .Configure<IOptions<TaskManagerOptions>>((forwarded, options) =>
                TrustedProxies.Configure(forwarded, TrustedProxies.Parse(options.Value.TrustedProxies, out _)));
        services.AddAuthentication(ApiKeyAuthentication.SchemeName)
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ApiKeyAuthentication>(ApiKeyAuthentication.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(Policies.Client, p => p.RequireRole(Roles.Client, Roles.Admin))
            .AddPolicy(Policies.Worker, p => p.RequireRole(Roles.Worker))
            .AddPolicy(Policies.Admin, p => p.RequireRole(Roles.Admin));

        services.AddRateLimiter(limiter =>
        {
            limiter.AddPolicy(PerKeyRateLimit, context =>
            {
                var options = context.RequestServices.GetRequiredService<IOptions<TaskManagerOptions>>().Value;
                var key = context.User.FindFirst(ApiKeyAuthentication.KeyIdClaim)?.Value ?? "anonymous";
                return RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = options.RateLimitBurst,
                    TokensPerPeriod = options.RateLimitPerSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            limiter.OnRejected = async (context, cancellationToken) =>
            {
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
                var response = context.HttpContext.Response;
                response.StatusCode = StatusCodes.Status429TooManyRequests;
                response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
                await context.HttpContext.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = context.HttpContext,
                    ProblemDetails =
                    {
                        Status = StatusCodes.Status429TooManyRequests,
                        Title = "Too many requests.",
                        Detail = $"This key is over its rate; retry after {retryAfter} s.",
                    },
                });
            };
        });
        return services;
    }
}

/// <summary>
/// The Hangfire dashboard's door: an admin key (header, or <c>?api_key=</c> once, which sets a
/// cookie for the dashboard's own pages); and, in Development only, any request from loopback, so
/// the developer running the AppHost follows the dashboard's link straight in.
/// </summary>
public sealed class HangfireDashboardAuthorization(Keyring keyring, IHostEnvironment environment) : IDashboardAuthorizationFilter
{
    public const string Cookie = "tm_admin_key";

    public bool Authorize(DashboardContext context)
    {
        var http = context.GetHttpContext();
        if (environment.IsDevelopment() && http.Connection.RemoteIpAddress is { } remote && System.Net.IPAddress.IsLoopback(remote))
        {
            return true;
        }
        if (IsAdmin(ApiKeyAuthentication.PresentedKey(http.Request)) || IsAdmin(http.Request.Cookies[Cookie]))
        {
            return true;
        }
        var fromQuery = http.Request.Query["api_key"].ToString();
        if (IsAdmin(fromQuery))
        {
            http.Response.Cookies.Append(Cookie, fromQuery, new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Secure = http.Request.IsHttps,
                Path = "/hangfire",
            });
            return true;
        }
        return false;
    }

    private bool IsAdmin(string? key) => !string.IsNullOrEmpty(key) && keyring.Find(key)?.Role == Roles.Admin;
}
