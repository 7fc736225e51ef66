using System.Diagnostics;
using System.Text.RegularExpressions;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>
/// Real inference through the real API and a real worker: speech with espeak-ng, OCR with
/// tesseract (.ci/run installs both).
/// </summary>
[Trait("Category", "Fleet")]
public sealed partial class RealBackendTests : IClassFixture<FleetFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private readonly FleetFixture fleet;

    public RealBackendTests(FleetFixture fleet)
    {
        this.fleet = fleet;
        if (fleet.Workers.Count == 0)
        {
            fleet.StartWorker("real", capacity: 2, environment: new Dictionary<string, string>
            {
                ["TASKMANAGER_BACKEND"] = "llm=sim,sd=sim,tts=espeak,image_to_text=tesseract",
            });
        }
    }

    [Fact]
    public async Task TtsTask_WithEspeak_ReturnsAWavArtifact_WhoseDurationFitsTheText()
    {
        var shortId = await fleet.SubmitAsync("""{"type":"tts","input":{"text":"Hello there."}}""");
        var longId = await fleet.SubmitAsync("""{"type":"tts","input":{"text":"TaskManager carries every task to a final state, enforces its timeout, retries it when it fails, and recovers it when its worker dies."}}""");

        var shortSeconds = await WavSecondsAsync(shortId);
        var longSeconds = await WavSecondsAsync(longId);

        // About 175 words a minute at speed 1: two words take about a second, 22 words about seven.
        Assert.InRange(shortSeconds, 0.3, 3.0);
        Assert.InRange(longSeconds, 4.0, 15.0);
        Assert.True(longSeconds > shortSeconds * 2.5, $"{shortSeconds:0.00} s for 2 words against {longSeconds:0.00} s for 22");
    }

    [Fact]
    public async Task ImageToTextTask_WithTesseract_ReadsTheTextOfARenderedPng()
    {
        var png = await RenderAsync("HELLO TASKMANAGER 2026");
        var id = await fleet.SubmitAsync("""{"type":"image_to_text","input":{"image":"IMAGE"}}""".Replace("IMAGE", Convert.ToBase64String(png)));

        var task = await fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed", Timeout);

        Assert.True(task.GetProperty("status").GetString() == "succeeded", task.ToString());
        var text = Whitespace().Replace(task.GetProperty("output").GetProperty("text").GetString()!, " ").Trim();
        Assert.Equal("HELLO TASKMANAGER 2026", text);
    }

    private async Task<double> WavSecondsAsync(string id)
    {
        var task = await fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed", Timeout);
        Assert.True(task.GetProperty("status").GetString() == "succeeded", task.ToString());
        var audio = task.GetProperty("output").GetProperty("audio");
        var response = await fleet.Client.GetAsync(audio.GetProperty("url").GetString());
        Assert.Equal("audio/wav", response.Content.Headers.ContentType?.MediaType);
        var wav = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal("RIFF"u8.ToArray(), wav[..4]);
        Assert.Equal("WAVE"u8.ToArray(), wav[8..12]);
        var seconds = WavDuration(wav);
        Assert.Equal(seconds, task.GetProperty("output").GetProperty("duration_seconds").GetDouble(), 1);
        return seconds;
    }

    /// <summary>Duration from the WAV's own header: the data chunk's size over the byte rate.</summary>
    private static double WavDuration(byte[] wav)
    {
        var byteRate = BitConverter.ToInt32(wav, 28);
        for (var offset = 12; offset + 8 <= wav.Length;)
        {
            var id = System.Text.Encoding.ASCII.GetString(wav, offset, 4);
            var size = BitConverter.ToInt32(wav, offset + 4);
            if (id == "data")
            {
                // espeak-ng writes to a pipe and may leave the size unset: the rest of the file is data then.
                var data = size is <= 0 or int.MaxValue || offset + 8 + size > wav.Length ? wav.Length - offset - 8 : size;
                return data / (double)byteRate;
            }
            offset += 8 + size + (size % 2);
        }
        throw new InvalidOperationException("The WAV has no data chunk.");
    }

    /// <summary>Renders text to a PNG with ImageMagick (Debian's /usr/bin/convert where it is).</summary>
    private static async Task<byte[]> RenderAsync(string text)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ocr-{Guid.NewGuid():N}.png");
        var convert = File.Exists("/usr/bin/convert") ? "/usr/bin/convert" : "convert";
        var start = new ProcessStartInfo(convert)
        {
            ArgumentList = { "-size", "1400x220", "xc:white", "-fill", "black", "-pointsize", "72", "-annotate", "+30+140", text, path },
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        var errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0 && File.Exists(path), $"ImageMagick could not render the image: {errors}");
        try
        {
            return await File.ReadAllBytesAsync(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}

/// <summary>A worker whose backend lacks its library does not take that type, and says why.</summary>
[Trait("Category", "Fleet")]
public sealed class MissingBackendTests(FleetFixture fleet) : IClassFixture<FleetFixture>
{
    [Fact]
    public async Task WorkerWithoutTheLlmLibrary_RefusesLlm_WithAClearLine_AndAnLlmTaskWaitsForAWorkerThatCanServeIt()
    {
        // No Python package index here: the transformers library is not installed.
        var worker = fleet.StartWorker("no-transformers", environment: new Dictionary<string, string>
        {
            ["TASKMANAGER_BACKEND"] = "llm=transformers,sd=sim,tts=sim,image_to_text=sim",
        });
        var id = await fleet.WorkerIdAsync("no-transformers");

        var stats = await (await fleet.Client.GetAsync("/api/tasks/workers/stats")).JsonAsync();
        var types = stats.GetProperty("workers").EnumerateArray().Single(w => w.GetProperty("id").GetString() == id)
            .GetProperty("task_types").EnumerateArray().Select(t => t.GetString()).ToArray();
        Assert.DoesNotContain("llm", types);
        Assert.Contains("tts", types);
        Assert.Contains(worker.Output.Split('\n'), line => line.Contains("transformers", StringComparison.Ordinal) && line.Contains("unavailable", StringComparison.Ordinal));

        var task = await fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"who will run me?"}}""");
        var tts = await fleet.SubmitAsync("""{"type":"tts","input":{"text":"I run."}}""");
        await fleet.WaitForStatusAsync(tts, s => s == "succeeded", TimeSpan.FromSeconds(60));
        var waiting = await fleet.GetTaskAsync(task);
        Assert.Equal("queued", waiting.GetProperty("status").GetString());
        Assert.Equal("No live worker serves llm tasks.", waiting.GetProperty("waiting_reason").GetString());

        fleet.StartWorker("sim-llm", environment: new Dictionary<string, string> { ["TASKMANAGER_BACKEND"] = "sim" });
        await fleet.WaitForStatusAsync(task, s => s == "succeeded", TimeSpan.FromSeconds(60));
    }
}
