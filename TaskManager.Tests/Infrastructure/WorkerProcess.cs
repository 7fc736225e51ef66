using System.Diagnostics;
using System.Text;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// The Python worker run alone: <c>python3 -m taskmanager_worker</c> (or another interpreter, such
/// as the system's <c>/usr/bin/python3</c> that has Celery for the <c>celery</c> backend),
/// configured by environment variables.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly StringBuilder output = new();

    private WorkerProcess(Process process) => Process = process;

    public Process Process { get; }

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

    public static WorkerProcess Start(Uri apiUrl, IDictionary<string, string>? environment = null, string interpreter = "python3")
    {
        var start = new ProcessStartInfo(interpreter)
        {
            ArgumentList = { "-m", "taskmanager_worker" },
            WorkingDirectory = Path.Combine(Repository.Root, "worker"),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["TASKMANAGER_API_URL"] = apiUrl.ToString().TrimEnd('/');
        start.Environment["TASKMANAGER_BACKEND"] = "sim";
        start.Environment["TASKMANAGER_WORKER_TOKEN"] = Credentials.WorkerToken;
        start.Environment["PYTHONUNBUFFERED"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        var worker = new WorkerProcess(System.Diagnostics.Process.Start(start)!);
        worker.Process.OutputDataReceived += (_, e) => worker.Append(e.Data);
        worker.Process.ErrorDataReceived += (_, e) => worker.Append(e.Data);
        worker.Process.BeginOutputReadLine();
        worker.Process.BeginErrorReadLine();
        return worker;
    }

    /// <summary>Sends SIGTERM, as a container runtime or systemd stops a worker.</summary>
    public void Terminate() => Signal(Process.Id, "TERM");

    public async ValueTask DisposeAsync()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
            await Process.WaitForExitAsync();
        }
        Process.Dispose();
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

    private static void Signal(int pid, string signal)
    {
        using var kill = System.Diagnostics.Process.Start("kill", $"-{signal} {pid}");
        kill.WaitForExit();
    }
}

/// <summary>The repository's root folder, found from the test assembly.</summary>
public static class Repository
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "TaskManager.sln")))
        {
            directory = directory.Parent;
        }
        return directory?.FullName ?? throw new InvalidOperationException("Cannot find TaskManager.sln above the test assembly.");
    }
}
