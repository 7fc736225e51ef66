using System.Security.Cryptography;
using System.Text;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Webhooks;

/// <summary>
/// Standard Webhooks signing. A tenant's secret is <c>whsec_</c> and the base64 of 32 random bytes;
/// a delivery carries <c>webhook-id</c>, <c>webhook-timestamp</c> (Unix seconds) and
/// <c>webhook-signature</c>: <c>v1,</c> and the base64 of HMAC-SHA256, keyed with the secret's
/// bytes, over <c>{id}.{timestamp}.{body}</c>; one such entry per secret in force, space-separated
/// (during a rotation, the new secret's and the old one's), so a receiver holding either verifies.
/// </summary>
public static class WebhookSignature
{
    public const string SecretPrefix = WebhookSecretInfo.Prefix;

    /// <summary>A new secret: <c>whsec_</c> and 32 random bytes in base64 (made in the domain, where the store makes them too).</summary>
    public static string NewSecret() => WebhookSecretInfo.NewSecret();

    /// <summary>The <c>webhook-signature</c> header's value for a message signed with each of <paramref name="secrets"/>.</summary>
    public static string Sign(string messageId, long timestamp, string body, IEnumerable<string> secrets)
    {
        var content = Encoding.UTF8.GetBytes($"{messageId}.{timestamp}.{body}");
        return string.Join(' ', secrets.Select(secret => "v1," + Convert.ToBase64String(HMACSHA256.HashData(KeyOf(secret), content))));
    }

    /// <summary>The HMAC key of a secret: the bytes its base64 stands for, after the prefix.</summary>
    public static byte[] KeyOf(string secret) =>
        Convert.FromBase64String(secret.StartsWith(SecretPrefix, StringComparison.Ordinal) ? secret[SecretPrefix.Length..] : secret);
}
