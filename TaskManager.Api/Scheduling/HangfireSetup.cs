using Hangfire;
using TaskManager.Api.Webhooks;

namespace TaskManager.Api.Scheduling;

/// <summary>
/// Hangfire, on the job storage the store provides. Both roles get the storage (the api role for
/// the dashboard at <c>/hangfire</c>); only the scheduler role runs the Hangfire server. Hangfire
/// stays off the hot path: nothing in submit, lease or complete calls it.
/// </summary>
public static class HangfireSetup
{
    public static IServiceCollection AddTaskScheduling(this IServiceCollection services, TaskManagerOptions options,
        Func<IServiceProvider, JobStorage> storage)
    {
        services.AddHangfire((provider, config) => config
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings()
            .UseStorage(storage(provider)));

        if (options.Role == "scheduler")
        {
            // Hangfire.AspNetCore runs every IBackgroundProcess in the container beside the server.
            services.AddSingleton<Hangfire.Server.IBackgroundProcess, SchedulerProcess>();
            services.AddTransient<RetryJob>();
            services.AddWebhookDeliveries(options);
            services.AddHangfireServer(server =>
            {
                server.ServerName = $"taskmanager-scheduler:{Environment.MachineName}:{Environment.ProcessId}";
                // The scheduler's jobs are short Redis calls; two workers keep a two-core box free.
                server.WorkerCount = 2;
                server.Queues = ["default"];
                // Retry jobs are delayed jobs: poll for due ones every second, not every 15 s.
                server.SchedulePollingInterval = TimeSpan.FromSeconds(1);
            });
        }
        return services;
    }
}
