namespace TaskManager.Api.Domain;

/// <summary>Tenant names the storage knows without the security layer.</summary>
public static class Tenants
{
    /// <summary>The tenant of tasks submitted without one (tests, and deployments without client keys).</summary>
    public const string Default = "default";

    /// <summary>Any tenant: what an admin acts as.</summary>
    public const string All = "*";
}
