using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace TaskManager.Bench;

/// <summary>
/// The peers (bench/peers): each is a program that measures its library on a Redis it is given
/// and prints one line of JSON last. They run on a Redis of their own, started the same way as
/// TaskManager's, with nothing else on it, so that INFO commandstats counts only them.
/// </summary>
public static class Peers
{
    public static readonly string[] Names = ["celery", "bullmq", "hangfire"];

    public static async Task<Dictionary<string, double>?> RunAsync(string name, string root, Redis redis, int jobs, int pickupSamples,
        string logs, Action<string> say)
    {
        var jobsText = jobs.ToString(CultureInfo.InvariantCulture);
        var samples = pickupSamples.ToString(CultureInfo.InvariantCulture);
        // Each drains as many jobs unmeasured before its end-to-end measurement as TaskManager does.
        var warmUp = Scenarios.EndToEndWarmUpJobs(jobs).ToString(CultureInfo.InvariantCulture);
        var (file, arguments) = name switch
        {
            "celery" => (CeleryPython(), new[] { Path.Combine(root, "bench/peers/celery/bench.py"), "--redis-url", redis.Url, "--jobs", jobsText, "--pickup-samples", samples, "--warmup-jobs", warmUp }),
            "bullmq" => ("node", new[] { Path.Combine(root, "bench/peers/bullmq/bench.mjs"), "--redis-url", redis.Url, "--jobs", jobsText, "--pickup-samples", samples, "--warmup-jobs", warmUp }),
            "hangfire" => ("dotnet", new[] { Path.Combine(root, "bench/peers/hangfire/bin/Release/net10.0/HangfirePeer.dll"), "--redis", redis.ConnectionString, "--jobs", jobsText, "--pickup-samples", samples, "--warmup-jobs", warmUp }),
            _ => throw new ArgumentException($"No peer '{name}'.", nameof(name)),
        };
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.Combine(root, "bench/peers", name),
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        await File.AppendAllTextAsync(Path.Combine(logs, $"peer-{name}.log"), stdout + await stderr);
        var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
        if (process.ExitCode != 0 || last is null || !last.TrimStart().StartsWith('{'))
        {
            say($"peer {name} failed (exit {process.ExitCode}); see {logs}/peer-{name}.log");
            return null;
        }
        var figures = new Dictionary<string, double>();
        foreach (var property in JsonDocument.Parse(last).RootElement.EnumerateObject())
        {
            if (property.Value.ValueKind == JsonValueKind.Number)
            {
                figures[property.Name] = property.Value.GetDouble();
            }
            else if (property.Name == "version" && property.Value.ValueKind == JsonValueKind.String)
            {
                Versions[name] = property.Value.GetString()!;
            }
        }
        say($"peer {name}: {last.Trim()}");
        return figures;
    }

    /// <summary>The version each peer reported, by name.</summary>
    public static Dictionary<string, string> Versions { get; } = [];

    /// <summary>Debian's python3-celery lives in /usr/bin/python3's packages, which may not be the python3 on PATH.</summary>
    private static string CeleryPython() => File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}
