using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// <c>GET /api/me</c>: who the key presented is, for a client that shows it (the console, <c>tm</c>):
/// a client key's tenant, or an admin key. Read from the key alone: no Redis call.
/// </summary>
public static class CallerApi
{
    public static RouteHandlerBuilder MapCallerApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/me", Me).WithTags("Tasks")
            .RequireAuthorization(Policies.Client)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit)
            .WithSummary("The caller: role (client or admin) and tenant")
            .WithDescription("A client key's tenant is the one whose tasks it sees; an admin key sees every tenant's, and its own submissions go under the tenant 'admin'.");

    /// <param name="Role"><c>client</c> or <c>admin</c>.</param>
    /// <param name="Tenant">A client's tenant; for an admin, the tenant its own submissions go under.</param>
    public sealed record CallerDto(string Role, string Tenant);

    private static Ok<CallerDto> Me(ClaimsPrincipal user) =>
        TypedResults.Ok(new CallerDto(user.IsAdmin() ? "admin" : "client", TasksApi.SubmitterTenant(user)));
}
