using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Coordination;

/// <summary>
/// The idle heartbeats this API replica holds. A worker that runs nothing may have its heartbeat
/// held up to <c>MaxLeaseWaitSeconds</c> instead of one heartbeat interval; while it is held, its
/// open request says it is alive, and this keeps its last heartbeat time current in the store every
/// interval, for all of them in one store call. A thousand idle workers then send a heartbeat
/// each 55 s, not each 5 s. (A worker whose machine vanishes without closing its connection is
/// taken for alive until its held heartbeat ends; it runs nothing, so no task waits on it.)
/// </summary>
public sealed partial class IdleHeartbeats(IWorkerRegistry workers, IStoreHealth store, TimeProvider time, IOptions<TaskManagerOptions> options,
    ILogger<IdleHeartbeats> logger)
    : BackgroundService
{
    private readonly ConcurrentDictionary<string, int> held = new(StringComparer.Ordinal);

    /// <summary>Counts <paramref name="workerId"/>'s heartbeat as held until the result is disposed.</summary>
    public IDisposable Hold(string workerId)
    {
        held.AddOrUpdate(workerId, 1, (_, n) => n + 1);
        return new Release(this, workerId);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Max(1, options.Value.HeartbeatIntervalSeconds)), time);
        while (await Tick(timer, stoppingToken))
        {
            var ids = held.Keys.ToArray();
            if (ids.Length == 0)
            {
                continue;
            }
            try
            {
                await workers.TouchWorkersAsync(ids);
            }
            catch (Exception ex) when (store.Describe(ex) is not null)
            {
                LogUnavailable(logger, ids.Length, ex.Message);
            }
        }
    }

    private static async Task<bool> Tick(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not keep {Count} idle workers alive: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, int count, string reason);

    private sealed class Release(IdleHeartbeats owner, string workerId) : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0)
            {
                // Removed only when the count comes back to zero (a worker may hold two briefly).
                while (owner.held.TryGetValue(workerId, out var n))
                {
                    if (n <= 1
                        ? owner.held.TryRemove(new KeyValuePair<string, int>(workerId, n))
                        : owner.held.TryUpdate(workerId, n - 1, n))
                    {
                        break;
                    }
                }
            }
        }
    }
}
