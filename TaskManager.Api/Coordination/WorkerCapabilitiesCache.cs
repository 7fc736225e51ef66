using System.Collections.Concurrent;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Coordination;

/// <summary>
/// The task types each worker serves and the models it has loaded, learnt from its leases, so
/// that a waiting lease is woken only for work it can take, and first for its models. Unknown
/// workers wait on every type until their first lease.
/// </summary>
/// <remarks>
/// Every worker id that leases here gets an entry, and a worker that restarts registers under a new
/// id: the entries of workers that stopped leasing are dropped, so the cache stays as large as the
/// live fleet. A live worker leases at least once per <c>MaxLeaseWaitSeconds</c> (its long poll
/// ends), far inside <see cref="Forget"/>; one dropped all the same only waits on every type
/// again until its next lease.
/// </remarks>
public sealed class WorkerCapabilitiesCache(TimeProvider time)
{
    /// <summary>How long an entry lasts without a lease from its worker.</summary>
    internal static readonly TimeSpan Forget = TimeSpan.FromMinutes(10);

    /// <summary>The fewest new workers between two looks for old entries.</summary>
    internal const int MinSweepSize = 1024;

    private readonly ConcurrentDictionary<string, Entry> known = new(StringComparer.Ordinal);
    private readonly Lock sweeping = new();
    private int added; // new workers since the last sweep
    private int sweepAfter = MinSweepSize;

    public (IReadOnlyList<string> Types, IReadOnlyList<string> Models) Get(string workerId) =>
        known.TryGetValue(workerId, out var e) ? (e.Types, e.Models) : (TaskTypes.All, []);

    public void Set(string workerId, IReadOnlyList<string> types, IReadOnlyList<string> models)
    {
        var entry = new Entry(types, models, time.GetTimestamp());
        // A known worker (every lease but its first) is one write, as before. A sweep runs once as
        // many new workers came as the cache held after the last one (amortised; never Count on
        // this path, which takes every lock of the dictionary).
        if (known.ContainsKey(workerId) || !known.TryAdd(workerId, entry))
        {
            known[workerId] = entry;
        }
        else if (Interlocked.Increment(ref added) >= Volatile.Read(ref sweepAfter))
        {
            Sweep();
        }
    }

    private void Sweep()
    {
        lock (sweeping)
        {
            if (Volatile.Read(ref added) < sweepAfter)
            {
                return;
            }
            foreach (var (id, entry) in known)
            {
                if (time.GetElapsedTime(entry.LeasedAt) > Forget)
                {
                    known.TryRemove(new KeyValuePair<string, Entry>(id, entry));
                }
            }
            Volatile.Write(ref added, 0);
            Volatile.Write(ref sweepAfter, Math.Max(MinSweepSize, known.Count));
        }
    }

    private sealed record Entry(IReadOnlyList<string> Types, IReadOnlyList<string> Models, long LeasedAt);
}
