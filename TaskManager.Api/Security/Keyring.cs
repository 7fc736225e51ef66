using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace TaskManager.Api.Security;

/// <summary>Who a key belongs to: a client of a tenant, an admin, or a worker.</summary>
public sealed record Caller(string Role, string Tenant, string KeyId);

public static class Roles
{
    public const string Client = "client";
    public const string Admin = "admin";
    public const string Worker = "worker";

    /// <summary>The tenant of admins: they see every tenant's tasks.</summary>
    public const string AllTenants = "*";
}

/// <summary>
/// The configured keys, held only as SHA-256 hashes: a key given plainly is hashed at start-up,
/// one given as <c>sha256:&lt;hex&gt;</c> is taken as is. A presented key is hashed and looked up,
/// so the lookup's timing says nothing about the keys.
/// </summary>
public sealed class Keyring
{
    private readonly Dictionary<string, Caller> callers = new(StringComparer.Ordinal);

    public Keyring(IOptions<TaskManagerOptions> options)
    {
        var o = options.Value;
        foreach (var key in o.ApiKeys)
        {
            if (string.IsNullOrWhiteSpace(key.Key) || string.IsNullOrWhiteSpace(key.Tenant))
            {
                throw new OptionsValidationException(TaskManagerOptions.Section, typeof(TaskManagerOptions),
                    ["Each TaskManager:ApiKeys entry needs a Key and a Tenant."]);
            }
            Add(key.Key, Roles.Client, key.Tenant.Trim());
        }
        foreach (var key in o.AdminKeys.Where(k => !string.IsNullOrWhiteSpace(k)))
        {
            Add(key, Roles.Admin, Roles.AllTenants);
        }
        foreach (var token in o.WorkerTokens.Where(t => !string.IsNullOrWhiteSpace(t)))
        {
            Add(token, Roles.Worker, "");
        }
        Tenants = o.ApiKeys.Select(k => k.Tenant.Trim()).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>Every configured tenant (what an admin's listing covers).</summary>
    public IReadOnlyList<string> Tenants { get; }

    public Caller? Find(string presented) => callers.GetValueOrDefault(Hash(presented));

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private void Add(string configured, string role, string tenant)
    {
        var hash = configured.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase)
            ? configured[7..].Trim().ToLowerInvariant()
            : Hash(configured.Trim());
        if (hash.Length != 64 || !hash.All(char.IsAsciiHexDigitLower))
        {
            throw new OptionsValidationException(TaskManagerOptions.Section, typeof(TaskManagerOptions),
                [$"A {role} key given as sha256: must be 64 hex digits."]);
        }
        if (!callers.TryAdd(hash, new Caller(role, tenant, hash[..12])))
        {
            throw new OptionsValidationException(TaskManagerOptions.Section, typeof(TaskManagerOptions),
                [$"The same key is configured twice (as a {callers[hash].Role} key and a {role} key)."]);
        }
    }
}
