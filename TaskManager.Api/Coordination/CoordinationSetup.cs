namespace TaskManager.Api.Coordination;

/// <summary>The api role's in-process coordination: waiting leases, held heartbeats, event followers.</summary>
public static class CoordinationSetup
{
    public static IServiceCollection AddCoordination(this IServiceCollection services)
    {
        services.AddSingleton<LongPoll>();
        services.AddSingleton<LeaseWaiters>();
        services.AddHostedService(sp => sp.GetRequiredService<LeaseWaiters>());
        services.AddSingleton<WorkerCapabilitiesCache>();
        services.AddSingleton<LeaseBroker>();
        services.AddSingleton<CancelSignals>();
        services.AddHostedService(sp => sp.GetRequiredService<CancelSignals>());
        services.AddSingleton<IdleHeartbeats>();
        services.AddHostedService(sp => sp.GetRequiredService<IdleHeartbeats>());
        services.AddSingleton<WorkerHeartbeats>();
        services.AddSingleton<TaskEventSignals>();
        return services;
    }
}
