using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace TaskManager.Api.Security;

/// <summary>
/// Authenticates <c>Authorization: Bearer &lt;key&gt;</c> or <c>X-Api-Key: &lt;key&gt;</c> against the
/// <see cref="Keyring"/>. No key or an unknown key: 401; a known key of the wrong role: 403. Both
/// answer an RFC 9457 ProblemDetails.
/// </summary>
public sealed class ApiKeyAuthentication(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, Keyring keyring, IProblemDetailsService problems)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string TenantClaim = "tenant";
    public const string KeyIdClaim = "key_id";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var presented = PresentedKey(Request);
        if (presented is null)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }
        if (keyring.Find(presented) is not { } caller)
        {
            return Task.FromResult(AuthenticateResult.Fail("The key is not valid."));
        }
        var identity = new ClaimsIdentity(
            [new Claim(ClaimTypes.Role, caller.Role), new Claim(TenantClaim, caller.Tenant), new Claim(KeyIdClaim, caller.KeyId)],
            SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer";
        var detail = PresentedKey(Request) is null
            ? "Send a key as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'."
            : "The key is not valid.";
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = { Status = StatusCodes.Status401Unauthorized, Title = "Authentication is required.", Detail = detail },
        });
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status403Forbidden;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails =
            {
                Status = StatusCodes.Status403Forbidden,
                Title = "This key may not do this.",
                Detail = "Client keys call the client API, worker tokens the worker protocol, admin keys both the client and admin calls.",
            },
        });
    }

    public static string? PresentedKey(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && authorization.Length > 7)
        {
            return authorization[7..].Trim();
        }
        var header = request.Headers["X-Api-Key"].ToString();
        return header.Length > 0 ? header.Trim() : null;
    }
}

public static class Policies
{
    public const string Client = "client";
    public const string Worker = "worker";
    public const string Admin = "admin";
}

public static class CallerExtensions
{
    /// <summary>The caller's tenant; <see cref="Roles.AllTenants"/> for an admin.</summary>
    public static string Tenant(this ClaimsPrincipal user) => user.FindFirstValue(ApiKeyAuthentication.TenantClaim) ?? "";

    public static bool IsAdmin(this ClaimsPrincipal user) => user.IsInRole(Roles.Admin);
}
