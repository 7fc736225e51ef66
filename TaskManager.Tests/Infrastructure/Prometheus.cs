using System.Globalization;
using System.Text.RegularExpressions;

namespace TaskManager.Tests.Infrastructure;

/// <summary>Reads samples out of a Prometheus text exposition (what <c>GET /metrics</c> answers).</summary>
public static partial class Prometheus
{
    /// <summary>The sum of the samples with this name whose labels include all of <paramref name="labels"/>; 0 when there is none yet.</summary>
    public static double Sample(string exposition, string name, params (string Key, string Value)[] labels)
    {
        var sum = 0.0;
        foreach (Match line in SampleLine().Matches(exposition))
        {
            if (line.Groups["name"].Value != name)
            {
                continue;
            }
            var found = LabelPair().Matches(line.Groups["labels"].Value).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
            if (labels.All(l => found.GetValueOrDefault(l.Key) == l.Value))
            {
                sum += double.Parse(line.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }
        return sum;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)", RegexOptions.Multiline)]
    private static partial Regex SampleLine();

    [GeneratedRegex("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex LabelPair();
}
