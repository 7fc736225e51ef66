namespace TaskManager.Api.Domain;

/// <summary>
/// Each tenant's webhook signing secret. A tenant gets one the first time it is asked for (every
/// replica asking at once gets the same one); a rotation makes a new one current and keeps the
/// old one signing beside it for <see cref="WebhookSecretInfo.PreviousValidFor"/>, so that a
/// receiver has that long to change over.
/// </summary>
public interface IWebhookSecrets
{
    /// <summary>The secrets that sign a delivery now: the current one, then the previous one while it is still valid.</summary>
    Task<IReadOnlyList<string>> SigningSecretsAsync(string tenant);

    /// <summary>The tenant's secrets, a first one made when it has none.</summary>
    Task<WebhookSecretInfo> GetAsync(string tenant);

    /// <summary>A new current secret; the one it replaces stays valid as the previous one (the one before that is dropped).</summary>
    Task<WebhookSecretInfo> RotateAsync(string tenant);
}

/// <summary>A tenant's current secret and when it was made; the previous one and its end while it still signs (else both null).</summary>
public sealed record WebhookSecretInfo(string Secret, DateTimeOffset CreatedAt, string? PreviousSecret, DateTimeOffset? PreviousValidUntil)
{
    /// <summary>How long a secret keeps signing after a rotation replaced it.</summary>
    public static readonly TimeSpan PreviousValidFor = TimeSpan.FromHours(24);

    /// <summary>What a secret starts with (Standard Webhooks); the rest is the base64 of its key.</summary>
    public const string Prefix = "whsec_";

    public IReadOnlyList<string> SigningSecrets => PreviousSecret is null ? [Secret] : [Secret, PreviousSecret];

    /// <summary>A new secret: <c>whsec_</c> and 32 random bytes in base64.</summary>
    public static string NewSecret() => Prefix + Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
}
