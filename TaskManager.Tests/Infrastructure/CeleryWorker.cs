using System.Diagnostics;
using System.Text;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A real Celery worker (prefork pool) that runs the STAND-IN for the platform's GPU workers,
/// <c>worker/tests/celery_standin/app/tasks.py</c> (a simulation, not inference), with Debian's
/// python3-celery: <c>/usr/bin/python3 -m celery -A app.tasks worker -Q gpu_queue</c>. Started for a
/// test class, ready once it logs "ready.", killed with its whole process tree (SIGKILL) on dispose.
/// </summary>
public sealed class CeleryWorker : IAsyncDisposable
{
    /// <summary>The interpreter that has Celery: Debian's python3-celery and python3-redis install for it only.</summary>
    public const string Python = "/usr/bin/python3";

    private readonly StringBuilder output = new();

    private CeleryWorker(Process process, string name)
    {
        Process = process;
        Name = name;
    }

    public Process Process { get; }

    /// <summary>The node name given with <c>-n</c>, before the <c>@host</c> Celery adds.</summary>
    public string Name { get; }

    /// <summary>What the worker wrote (its log goes to stderr), for failure messages.</summary>
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

    /// <summary>
    /// Starts a worker on <paramref name="brokerUrl"/> and <paramref name="resultBackend"/> consuming
    /// <paramref name="queue"/>, its tasks writing their pool process ids into <paramref name="pidFolder"/>;
    /// returns once it is ready to take tasks.
    /// </summary>
    public static async Task<CeleryWorker> StartAsync(string brokerUrl, string resultBackend, string pidFolder,
        string queue = "gpu_queue", int concurrency = 2)
    {
        var name = $"standin-{Guid.NewGuid():N}"[..16];
        var start = new ProcessStartInfo(Python)
        {
            ArgumentList =
            {
                "-m", "celery", "-A", "app.tasks", "worker", "--pool", "prefork",
                "--concurrency", concurrency.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "-Q", queue, "-n", $"{name}@%h", "--loglevel", "INFO",
                // No waiting for other workers at start-up, nor chatter between them.
                "--without-mingle", "--without-gossip", "--without-heartbeat",
            },
            WorkingDirectory = Path.Combine(Repository.Root, "worker", "tests", "celery_standin"),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["CELERY_BROKER_URL"] = brokerUrl;
        start.Environment["CELERY_RESULT_BACKEND"] = resultBackend;
        start.Environment["STANDIN_PID_DIR"] = pidFolder;
        start.Environment["PYTHONUNBUFFERED"] = "1";
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception error)
        {
            throw new InvalidOperationException($"Cannot run {Python} ({error.Message}); these tests need it with Debian's " +
                "python3-celery and python3-redis (apt-get install python3-celery python3-redis).", error);
        }
        var worker = new CeleryWorker(process, name);
        process.OutputDataReceived += (_, e) => worker.Append(e.Data);
        process.ErrorDataReceived += (_, e) => worker.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await Wait.UntilAsync(() =>
        {
            if (process.HasExited)
            {
                process.WaitForExit();
                throw new InvalidOperationException(
                    $"The Celery worker exited with {process.ExitCode} before it was ready (these tests need {Python} with " +
                    $"Debian's python3-celery and python3-redis: apt-get install python3-celery python3-redis):\n{worker.Output}");
            }
            return worker.Output.Contains($"{name}@", StringComparison.Ordinal) && worker.Output.Contains(" ready.", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(60), $"the Celery worker {name} to be ready");
        return worker;
    }

    /// <summary>SIGKILLs the worker and its pool processes at once, as a crash or an OOM killer would, and reaps it.</summary>
    public void Kill()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
        }
        Process.WaitForExit();
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        Process.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (output)
            {
                output.AppendLine(line);
            }
        }
    }
}
