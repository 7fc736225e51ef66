using System.Diagnostics;
using System.Text;

namespace TaskManager.Tests.Infrastructure;

/// <summary>A process the tests start, its output kept, killed with its children on dispose.</summary>
public sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly StringBuilder output = new();
    private readonly string name;

    private ChildProcess(Process process, string name)
    {
        this.process = process;
        this.name = name;
    }

    public string Output
    {
        get
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    public static ChildProcess Start(ProcessStartInfo start, string name)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        var child = new ChildProcess(Process.Start(start)!, name);
        child.process.OutputDataReceived += (_, e) => child.Append(e.Data);
        child.process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        child.process.BeginOutputReadLine();
        child.process.BeginErrorReadLine();
        return child;
    }

    /// <summary>
    /// Waits until <paramref name="ready"/> holds (a connection refused counts as not yet); fails at
    /// once, with <paramref name="output"/>, if the process exits first.
    /// </summary>
    public Task WaitUntilAsync(Func<Task<bool>> ready, string what, Func<string> output) =>
        Wait.UntilAsync(async () =>
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{name} exited with {process.ExitCode}:\n{output()}");
            }
            try
            {
                return await ready();
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30), what);

    /// <summary>Waits until <paramref name="url"/> answers with any status.</summary>
    public async Task WaitUntilAnswersAsync(Uri url, Func<string> output)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        await WaitUntilAsync(async () =>
        {
            using var response = await http.GetAsync(url);
            return true;
        }, $"{name} to answer {url}", output);
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (output)
        {
            output.AppendLine(line);
        }
    }
}
