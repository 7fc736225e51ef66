using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;
using TaskManager.Api.Endpoints;
using TaskManager.Api.Storage;

namespace TaskManager.Api.Observability;

/// <summary>
/// Queue depths and live workers for the observable gauges, read from Redis every few seconds in
/// the background: a metrics export never waits on Redis, and Redis sees one read per period.
/// </summary>
public sealed partial class FleetGauges(IServiceProvider services, TimeProvider time, ILogger<FleetGauges> logger) : BackgroundService
{
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(5);
    private volatile IReadOnlyList<Measurement<long>> depths = [];
    private volatile IReadOnlyList<Measurement<long>> workers = [];

    public IEnumerable<Measurement<long>> QueueDepths() => depths;

    public IEnumerable<Measurement<long>> LiveWorkers() => workers;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var inspector = services.GetRequiredService<ITaskInspector>();
                var registry = services.GetRequiredService<IWorkerRegistry>();
                var options = services.GetRequiredService<IOptions<TaskManagerOptions>>().Value;
                var stats = await inspector.ReadStatsAsync([]);
                depths = TaskTypes.All.Select(t => new Measurement<long>(stats.QueueDepths.GetValueOrDefault(t),
                    new KeyValuePair<string, object?>("type", t))).ToArray();
                var now = time.GetUtcNow();
                var byStatus = (await registry.ListWorkersAsync(FleetApi.MaxWorkers)).GroupBy(w => FleetApi.StatusOf(w, now, options))
                    .ToDictionary(g => g.Key, g => g.Count());
                workers = WorkerStatuses.All.Select(s => new Measurement<long>(byStatus.GetValueOrDefault(s),
                    new KeyValuePair<string, object?>("status", s))).ToArray();
            }
            catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
            {
                LogUnavailable(logger, ex.Message);
            }
            await Task.Delay(Period, time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Gauges not refreshed: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string reason);
}
