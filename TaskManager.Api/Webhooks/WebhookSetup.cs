namespace TaskManager.Api.Webhooks;

/// <summary>The webhooks' wiring.</summary>
public static class WebhookSetup
{
    /// <summary>
    /// One <see cref="WebhookSender"/> for the process: it holds the one long-lived handler whose
    /// pooled connections every delivery shares.
    /// </summary>
    public static IServiceCollection AddWebhookSending(this IServiceCollection services)
    {
        services.AddSingleton<WebhookSender>();
        return services;
    }
}
