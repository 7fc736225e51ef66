using System.Net;
using System.Text.Json;
using TaskManager.Api.Storage;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>
/// A tenant's webhook signing secret over HTTP: admins read and rotate it; nobody else may; only
/// the tenants of the configured keys (and admins' own) have one.
/// </summary>
[Trait("Category", "Api")]
public sealed class WebhookSecretsApiTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private HttpClient Admin => fixture.Api.Client;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task AnAdmin_GetsATenantsSecret_TheSameEachTime_TheOneDeliveriesAreSignedWith()
    {
        var first = await Admin.GetAsync($"/api/admin/tenants/{Credentials.TenantA}/webhook-secret");
        var again = await (await Admin.GetAsync($"/api/admin/tenants/{Credentials.TenantA}/webhook-secret")).JsonAsync();

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.True(first.Headers.CacheControl?.NoStore);
        var body = await first.JsonAsync();
        Assert.Equal(["tenant", "secret", "created_at", "previous_secret", "previous_valid_until"], body.EnumerateObject().Select(p => p.Name));
        Assert.Equal(Credentials.TenantA, body.GetProperty("tenant").GetString());
        Assert.StartsWith("whsec_", body.GetProperty("secret").GetString(), StringComparison.Ordinal);
        Assert.InRange(DateTimeOffset.UtcNow - body.GetProperty("created_at").GetDateTimeOffset(), TimeSpan.Zero, TimeSpan.FromMinutes(5));
        Assert.Equal(JsonValueKind.Null, body.GetProperty("previous_secret").ValueKind);
        Assert.Equal(JsonValueKind.Null, body.GetProperty("previous_valid_until").ValueKind);
        Assert.Equal(body.ToString(), again.ToString());
        Assert.Equal([body.GetProperty("secret").GetString()!], await Store().SigningSecretsAsync(Credentials.TenantA));
    }

    [Fact]
    public async Task AnAdmin_RotatesATenantsSecret_TheOldOneSigningBesideItFor24Hours_AndNoOtherTenantsChanges()
    {
        var old = await (await Admin.GetAsync($"/api/admin/tenants/{Credentials.TenantA}/webhook-secret")).JsonAsync();
        var otherTenant = await (await Admin.GetAsync($"/api/admin/tenants/{Credentials.TenantB}/webhook-secret")).JsonAsync();

        var response = await Admin.PostAsync($"/api/admin/tenants/{Credentials.TenantA}/webhook-secret", null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var rotated = await response.JsonAsync();
        var secret = rotated.GetProperty("secret").GetString()!;
        Assert.NotEqual(old.GetProperty("secret").GetString(), secret);
        Assert.Equal(old.GetProperty("secret").GetString(), rotated.GetProperty("previous_secret").GetString());
        Assert.Equal(rotated.GetProperty("created_at").GetDateTimeOffset() + TimeSpan.FromHours(24),
            rotated.GetProperty("previous_valid_until").GetDateTimeOffset());
        Assert.Equal(rotated.ToString(), (await (await Admin.GetAsync($"/api/admin/tenants/{Credentials.TenantA}/webhook-secret")).JsonAsync()).ToString());
        Assert.Equal([secret, old.GetProperty("secret").GetString()!], await Store().SigningSecretsAsync(Credentials.TenantA));
        Assert.Equal(otherTenant.ToString(), (await (await Admin.GetAsync($"/api/admin/tenants/{Credentials.TenantB}/webhook-secret")).JsonAsync()).ToString());
    }

    [Theory]
    [InlineData(Credentials.ClientKey, "GET")]
    [InlineData(Credentials.ClientKey, "POST")]
    [InlineData(Credentials.WorkerToken, "GET")]
    [InlineData(Credentials.WorkerToken, "POST")]
    public async Task AClientKeyOrAWorkerToken_IsRefused403_AndMakesNoSecret(string key, string method)
    {
        using var client = fixture.Api.ClientWith(key);

        var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), $"/api/admin/tenants/{Credentials.TenantA}/webhook-secret"));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.False(await fixture.Redis.Db.KeyExistsAsync(new RedisKeys("{tm}:").WebhookSecret(Credentials.TenantA)));
    }

    [Theory]
    [InlineData("GET", "nobody")]
    [InlineData("POST", "nobody")]
    [InlineData("GET", "Tenant-A")]
    [InlineData("POST", "%2A")]
    public async Task ATenantNoKeyBelongsTo_Is404_AndGetsNoSecret(string method, string tenant)
    {
        var response = await Admin.SendAsync(new HttpRequestMessage(new HttpMethod(method), $"/api/admin/tenants/{tenant}/webhook-secret"));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("no client key", (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Empty(fixture.Redis.Primaries.Single().Keys(pattern: "*whsecret*"));
    }

    [Fact]
    public async Task TheAdminsOwnTenant_HasASecretToo()
    {
        // An admin's own tasks are stored under the tenant "admin", and their webhooks are signed with its secret.
        var response = await Admin.GetAsync("/api/admin/tenants/admin/webhook-secret");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("admin", (await response.JsonAsync()).GetProperty("tenant").GetString());
    }

    [Fact]
    public async Task TheOpenApiDocument_DescribesBoth()
    {
        var document = await (await Admin.GetAsync("/openapi/v1.json")).JsonAsync();

        var path = document.GetProperty("paths").GetProperty("/api/admin/tenants/{tenant}/webhook-secret");
        Assert.Equal(["get", "post"], path.EnumerateObject().Select(o => o.Name).Where(n => n is "get" or "post").Order());
    }

    /// <summary>The store as the API uses it: the default prefix, on the fixture's Redis.</summary>
    private RedisWebhookSecrets Store() => new(fixture.Redis.Connection, new RedisKeys("{tm}:"), TimeProvider.System);
}
