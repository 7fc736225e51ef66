using System.Globalization;

namespace TaskManager.Api.Domain;

/// <summary>
/// Exponential backoff with jitter between attempts: after attempt n the wait is
/// <c>min(cap, base * factor^(n-1))</c>, scaled by a random factor in <c>[1 - jitter, 1 + jitter]</c>
/// so that tasks failing together do not come back together.
/// </summary>
public sealed record RetryPolicy(TimeSpan Base, double Factor, TimeSpan Cap, double Jitter)
{
    public TimeSpan DelayAfter(int attempt, Random random)
    {
        var raw = Base.TotalMilliseconds * Math.Pow(Factor, Math.Max(0, attempt - 1));
        var capped = Math.Min(raw, Cap.TotalMilliseconds);
        var scale = 1 + (Jitter * ((random.NextDouble() * 2) - 1));
        return TimeSpan.FromMilliseconds(Math.Max(0, capped * scale));
    }

    /// <summary>The delays after attempts 1 to <see cref="TaskLimits.MaxAttempts"/>, in ms, as the scripts take them.</summary>
    public string DelaysMsList(Random random) => string.Join(',',
        Enumerable.Range(1, TaskLimits.MaxAttempts)
            .Select(a => ((long)DelayAfter(a, random).TotalMilliseconds).ToString(CultureInfo.InvariantCulture)));
}
