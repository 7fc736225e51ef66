using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace TaskManager.Web.Services;

/// <summary>
/// Finished tasks per minute and type over the last 15 minutes, from the API's running totals as
/// the console reads them (every open Overview page reads them each 2 s). The API reports only the
/// 1-, 5- and 15-minute averages, so the console keeps the samples, per key (a tenant sees its own
/// figures), in memory: minutes when no page was open stay empty.
/// </summary>
public sealed class ThroughputHistory(TimeProvider time)
{
    public const int Minutes = 15;

    private readonly ConcurrentDictionary<string, Samples> byKey = new();

    /// <summary>Records the finished totals per type; answers the series per type, oldest minute first (null: no samples).</summary>
    public IReadOnlyDictionary<string, double?[]> Record(string key, IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> finishedTotal)
    {
        var now = time.GetUtcNow();
        var totals = finishedTotal.ToDictionary(t => t.Key, t => t.Value.Values.Sum());
        var samples = byKey.GetOrAdd(Hash(key), _ => new Samples());
        lock (samples)
        {
            samples.List.Add((now, totals));
            samples.List.RemoveAll(s => s.At < now.AddMinutes(-(Minutes + 1)));
            return totals.Keys.ToDictionary(type => type, type => Series(samples.List, type, now));
        }
    }

    private static double?[] Series(List<(DateTimeOffset At, Dictionary<string, long> Totals)> samples, string type, DateTimeOffset now)
    {
        var series = new double?[Minutes];
        for (var m = 0; m < Minutes; m++)
        {
            var start = now.AddMinutes(m - Minutes);
            var end = start.AddMinutes(1);
            var inside = samples.Where(s => s.At > start && s.At <= end).ToList();
            if (inside.Count == 0)
            {
                continue;
            }
            // Counted from the last sample before the minute when there is one, else from its first.
            var before = samples.LastOrDefault(s => s.At <= start);
            var from = before.Totals ?? inside[0].Totals;
            series[m] = inside[^1].Totals.GetValueOrDefault(type) - from.GetValueOrDefault(type);
        }
        return series;
    }

    private static string Hash(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private sealed class Samples
    {
        public List<(DateTimeOffset At, Dictionary<string, long> Totals)> List { get; } = [];
    }
}
