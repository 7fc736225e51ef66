using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Observability;

/// <summary>
/// Queue depths and live workers for the observable gauges, read from the store every few seconds in
/// the background: a metrics export never waits on the store, and the store sees one read per period.
/// Only while the gauges are collected (an exporter read them in the last <see cref="Watched"/>):
/// with no exporter, or none that reads them, nothing is read at all (reading the fleet costs a
/// read of every worker). A first collection wakes the refresh, so the next one is current.
/// </summary>
public sealed partial class FleetGauges(IServiceProvider services, TimeProvider time, ILogger<FleetGauges> logger) : BackgroundService
{
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Watched = TimeSpan.FromMinutes(2);
    private readonly SemaphoreSlim observed = new(0, 1);
    private long lastObserved = long.MinValue;
    private volatile IReadOnlyList<Measurement<long>> depths = [];
    private volatile IReadOnlyList<Measurement<long>> workers = [];

    public IEnumerable<Measurement<long>> QueueDepths()
    {
        Observed();
        return depths;
    }

    public IEnumerable<Measurement<long>> LiveWorkers()
    {
        Observed();
        return workers;
    }

    private void Observed()
    {
        var before = Interlocked.Exchange(ref lastObserved, time.GetTimestamp());
        if (before == long.MinValue || time.GetElapsedTime(before) > Watched)
        {
            // Wake a refresh that sleeps for want of a reader; one pending wake is enough.
            if (observed.CurrentCount == 0)
            {
                try
                {
                    observed.Release();
                }
                catch (SemaphoreFullException)
                {
                }
            }
        }
    }

    private bool Wanted()
    {
        var last = Interlocked.Read(ref lastObserved);
        return last != long.MinValue && time.GetElapsedTime(last) <= Watched;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            if (!Wanted())
            {
                try
                {
                    await observed.WaitAsync(stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            try
            {
                var inspector = services.GetRequiredService<ITaskInspector>();
                var registry = services.GetRequiredService<IWorkerRegistry>();
                var options = services.GetRequiredService<IOptions<TaskManagerOptions>>().Value;
                var stats = await inspector.ReadStatsAsync([]);
                depths = TaskTypes.All.Select(t => new Measurement<long>(stats.QueueDepths.GetValueOrDefault(t),
                    new KeyValuePair<string, object?>("type", t))).ToArray();
                var now = time.GetUtcNow();
                var byStatus = (await registry.ListWorkersAsync(WorkerStatuses.MaxListed)).GroupBy(w => WorkerStatuses.Of(w, now, options))
                    .ToDictionary(g => g.Key, g => g.Count());
                workers = WorkerStatuses.All.Select(s => new Measurement<long>(byStatus.GetValueOrDefault(s),
                    new KeyValuePair<string, object?>("status", s))).ToArray();
            }
            catch (Exception ex) when (services.GetRequiredService<IStoreHealth>().Describe(ex) is not null)
            {
                LogUnavailable(logger, ex.Message);
            }
            await Task.Delay(Period, time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Gauges not refreshed: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string reason);
}
