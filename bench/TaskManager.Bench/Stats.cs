namespace TaskManager.Bench;

/// <summary>Latency samples (milliseconds) and their percentiles.</summary>
public sealed class Latencies
{
    private readonly List<double> samples = [];
    private readonly Lock gate = new();

    public void Add(double ms)
    {
        lock (gate)
        {
            samples.Add(ms);
        }
    }

    public int Count => samples.Count;

    public double Percentile(double p)
    {
        lock (gate)
        {
            if (samples.Count == 0)
            {
                return double.NaN;
            }
            var sorted = samples.Order().ToArray();
            var rank = (int)Math.Ceiling(p / 100 * sorted.Length) - 1;
            return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
        }
    }
}

public static class Median
{
    public static double Of(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }
        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
