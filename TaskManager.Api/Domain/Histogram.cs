namespace TaskManager.Api.Domain;

/// <summary>
/// The buckets of the wait and run time histograms kept in Redis, and percentiles read from them.
/// A percentile is reported as the upper bound of the bucket it falls in: exact to the bucket,
/// at a cost that does not grow with the number of tasks.
/// </summary>
public static class Histogram
{
    /// <summary>Upper bounds in milliseconds; a last, open bucket holds everything longer.</summary>
    public static readonly IReadOnlyList<long> BoundsMs =
    [
        1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000,
    ];

    /// <summary>
    /// The upper bound (ms) of the bucket holding the <paramref name="quantile"/> of the counts;
    /// null when nothing was counted; for the open last bucket, the largest bound doubled.
    /// </summary>
    public static long? Percentile(IReadOnlyList<long> counts, double quantile)
    {
        var total = counts.Sum();
        if (total == 0)
        {
            return null;
        }
        var rank = (long)Math.Ceiling(quantile * total);
        long seen = 0;
        for (var i = 0; i < counts.Count; i++)
        {
            seen += counts[i];
            if (seen >= rank)
            {
                return i < BoundsMs.Count ? BoundsMs[i] : BoundsMs[^1] * 2;
            }
        }
        return BoundsMs[^1] * 2;
    }
}
