using Microsoft.AspNetCore.Http.HttpResults;
using TaskManager.Api.Domain;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// A tenant's webhook signing secret, for admins: read it (a first one is made on the first read)
/// to hand it to the tenant's receivers, or rotate it. After a rotation the previous secret keeps
/// signing beside the new one for 24 hours.
/// </summary>
public static class WebhookSecretsApi
{
    public static void MapWebhookSecretsApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/api/admin/tenants/{tenant}/webhook-secret").WithTags("Admin")
            .RequireAuthorization(Policies.Admin)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit);
        admin.MapGet("", Get)
            .WithSummary("A tenant's webhook signing secret")
            .WithDescription("The secret that signs the tenant's webhook deliveries (made on the first read), and the previous one while it still signs.");
        admin.MapPost("", Rotate)
            .WithSummary("Rotate a tenant's webhook signing secret")
            .WithDescription("A new secret signs from now on; the one it replaces signs beside it for 24 hours.");
    }

    public sealed record WebhookSecretDto(string Tenant, string Secret, DateTimeOffset CreatedAt, string? PreviousSecret, DateTimeOffset? PreviousValidUntil);

    private static Task<Results<Ok<WebhookSecretDto>, ProblemHttpResult>> Get(string tenant, Keyring keyring, IWebhookSecrets secrets, HttpResponse response) =>
        AnswerAsync(tenant, keyring, response, () => secrets.GetAsync(tenant));

    private static Task<Results<Ok<WebhookSecretDto>, ProblemHttpResult>> Rotate(string tenant, Keyring keyring, IWebhookSecrets secrets, HttpResponse response) =>
        AnswerAsync(tenant, keyring, response, () => secrets.RotateAsync(tenant));

    private static async Task<Results<Ok<WebhookSecretDto>, ProblemHttpResult>> AnswerAsync(
        string tenant, Keyring keyring, HttpResponse response, Func<Task<WebhookSecretInfo>> act)
    {
        // The tenants of the configured client keys, and the one admins' own tasks go under.
        if (tenant != TasksApi.AdminTenant && !keyring.Tenants.Contains(tenant, StringComparer.Ordinal))
        {
            return Problems.TenantNotFound(tenant);
        }
        var info = await act();
        response.Headers.CacheControl = "no-store";
        return TypedResults.Ok(new WebhookSecretDto(tenant, info.Secret, info.CreatedAt, info.PreviousSecret, info.PreviousValidUntil));
    }
}
