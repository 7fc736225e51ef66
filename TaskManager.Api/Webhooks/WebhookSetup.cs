using Hangfire;
using Hangfire.AspNetCore;
using Hangfire.Server;

namespace TaskManager.Api.Webhooks;

/// <summary>
/// The webhooks' wiring, in the scheduler role: the sender, the dispatcher (beside the
/// scheduler's loop in its Hangfire server), the delivery job, and a Hangfire server of its own
/// for the <c>webhooks</c> queue, with its own workers, so that deliveries waiting on slow
/// receivers never hold up the retry jobs, nor each other beyond its worker count.
/// </summary>
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

    public static IServiceCollection AddWebhookDeliveries(this IServiceCollection services, TaskManagerOptions options)
    {
        WebhookRetryAttribute.DelaysSeconds = WebhookDelays.Parse(options.Webhooks.RetryDelaysSeconds, out _) ?? WebhookDelays.Default;
        services.AddWebhookSending();
        services.AddTransient<WebhookJob>();
        services.AddSingleton<IBackgroundProcess, WebhookDispatcher>();
        services.AddHostedService(provider => new WebhookServer(provider, options.Webhooks.Concurrency));
        return services;
    }

    /// <summary>The Hangfire server of the webhooks queue, with no background process of its own.</summary>
    private sealed class WebhookServer(IServiceProvider provider, int workers) : IHostedService, IDisposable
    {
        private BackgroundJobServer? server;

        public Task StartAsync(CancellationToken cancellationToken)
        {
            server = new BackgroundJobServer(new BackgroundJobServerOptions
            {
                ServerName = $"taskmanager-webhooks:{Environment.MachineName}:{Environment.ProcessId}",
                WorkerCount = workers,
                Queues = [WebhookJob.Queue],
                // Retries are delayed jobs: poll for due ones every second, not every 15 s.
                SchedulePollingInterval = TimeSpan.FromSeconds(1),
                Activator = new AspNetCoreJobActivator(provider.GetRequiredService<IServiceScopeFactory>()),
            }, provider.GetRequiredService<JobStorage>(), []);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            server?.SendStop();
            return Task.CompletedTask;
        }

        public void Dispose() => server?.Dispose();
    }
}
