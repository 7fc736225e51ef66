using System.Net.Http.Headers;

namespace TaskManager.Tests.Infrastructure;

/// <summary>The keys the test deployments are configured with, and HTTP clients that present them.</summary>
public static class Credentials
{
    public const string ClientKey = "test-client-key-tenant-a";
    public const string TenantA = "tenant-a";
    public const string OtherClientKey = "test-client-key-tenant-b";
    public const string TenantB = "tenant-b";
    public const string AdminKey = "test-admin-key";
    public const string WorkerToken = "test-worker-token";

    /// <summary>The settings that configure these keys (tenant B's key given hashed, as at rest).</summary>
    public static IReadOnlyDictionary<string, string> Settings { get; } = new Dictionary<string, string>
    {
        ["TaskManager__ApiKeys__0__Key"] = ClientKey,
        ["TaskManager__ApiKeys__0__Tenant"] = TenantA,
        ["TaskManager__ApiKeys__1__Key"] = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("test-client-key-tenant-b"u8)),
        ["TaskManager__ApiKeys__1__Tenant"] = TenantB,
        ["TaskManager__AdminKeys__0"] = AdminKey,
        ["TaskManager__WorkerTokens__0"] = WorkerToken,
    };

    public static HttpClient ClientWith(Uri baseAddress, string? key)
    {
        var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return client;
    }
}

/// <summary>
/// Presents the key of the party that makes each call, as the real callers would: the worker
/// token on the worker protocol, the admin key on admin calls and the Hangfire dashboard, tenant
/// A's client key on the client API. Tests of who may do what use plain clients instead.
/// </summary>
public sealed class PartyKeyHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Headers.Authorization is null && !request.Headers.Contains("X-Api-Key"))
        {
            var path = request.RequestUri!.IsAbsoluteUri ? request.RequestUri.AbsolutePath : request.RequestUri.OriginalString;
            var key = path.StartsWith("/api/workers", StringComparison.Ordinal) ? Credentials.WorkerToken
                : path.StartsWith("/api/admin", StringComparison.Ordinal) || path.StartsWith("/hangfire", StringComparison.Ordinal) ? Credentials.AdminKey
                : Credentials.ClientKey;
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return base.SendAsync(request, cancellationToken);
    }
}
