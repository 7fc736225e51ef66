using System.Diagnostics;
using System.Text;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// The command line as a user gets it: <c>TaskManager.Cli</c> packed (<c>dotnet pack</c>) and
/// installed from that package (<c>dotnet tool install --tool-path</c>, from a local source
/// only, into a package cache of its own so that an older package of the same version is never
/// taken), once per test run; and a real stack for it to talk to (Redis, the API, the scheduler
/// and a <c>sim</c> worker of llm, sd and tts tasks: image_to_text tasks wait in their queue).
/// Every <c>tm</c> runs with HOME in a folder of the fixture's, so that no test reads or writes
/// the real home's profiles.
/// </summary>
public sealed class CliFixture : IAsyncLifetime
{
    public const string WorkerName = "cli-worker";

    private readonly string root = Directory.CreateTempSubdirectory("taskmanager-cli-").FullName;

    public FleetFixture Fleet { get; } = new();

    /// <summary>The installed tool's command.</summary>
    public string Tool => Path.Combine(root, "tools", "tm");

    /// <summary>The HOME every run gets unless it names its own: it holds no profile.</summary>
    public string Home => Path.Combine(root, "home");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Home);
        await Task.WhenAll(Fleet.InitializeAsync(), InstallAsync());
        Fleet.StartWorker(WorkerName, capacity: 4, new Dictionary<string, string>
        {
            ["TASKMANAGER_TASK_TYPES"] = "llm,sd,tts",
            ["TASKMANAGER_GPUS"] = """[{"name":"NVIDIA H100 80GB","memory_total_mb":81920,"memory_free_mb":61440}]""",
        });
        await Fleet.WorkerIdAsync(WorkerName);
    }

    /// <summary>A fresh folder to use as a run's HOME.</summary>
    public string NewHome() => Directory.CreateDirectory(Path.Combine(root, "home-" + Guid.NewGuid().ToString("N")[..8])).FullName;

    /// <summary>
    /// Starts <c>tm</c> with <paramref name="args"/>, HOME at <paramref name="home"/> (else <see cref="Home"/>),
    /// <c>TASKMANAGER_URL</c> at the API and <c>TASKMANAGER_API_KEY</c> tenant A's client key unless
    /// <paramref name="environment"/> says otherwise (a null value removes the variable).
    /// </summary>
    public TmProcess Start(IEnumerable<string> args, IDictionary<string, string?>? environment = null, string? home = null) =>
        Start(Tool, args, environment, home);

    /// <summary>
    /// Starts <c>tm</c> on a terminal of its own: util-linux's <c>script</c> runs it on a new
    /// pseudo-terminal and relays it, so that what the test writes to the process's stdin is typed
    /// on that terminal (Ctrl+C included: "" is turned into SIGINT by the terminal) and what tm
    /// prints on stdout and stderr comes back together on stdout. The exit code is tm's: script's
    /// shell ($SHELL, else sh) execs tm, since a shell left waiting would take the Ctrl+C itself
    /// (dash exits 130 on it once tm ends).
    /// </summary>
    public TmProcess StartOnATerminal(IEnumerable<string> args) =>
        Start("script", ["--quiet", "--return", "--command", "exec " + string.Join(' ', args.Prepend(Tool).Select(ShellQuote)), "/dev/null"], null, null);

    private static string ShellQuote(string arg) => "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private TmProcess Start(string program, IEnumerable<string> args, IDictionary<string, string?>? environment, string? home)
    {
        // Through env(1), with SIGINT's default handling restored: a process started in the
        // background by a shell without job control (as CI may start the tests) inherits SIGINT
        // ignored, and .NET then leaves it ignored, so Ctrl+C would never reach tm.
        var start = new ProcessStartInfo("env") { WorkingDirectory = root };
        start.ArgumentList.Add("--default-signal=INT");
        start.ArgumentList.Add(program);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment.Remove("XDG_CONFIG_HOME");
        start.Environment["HOME"] = home ?? Home;
        start.Environment["TASKMANAGER_URL"] = Fleet.Api.BaseAddress.ToString();
        start.Environment["TASKMANAGER_API_KEY"] = Credentials.ClientKey;
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }
        return TmProcess.Start(start);
    }

    /// <summary>Runs <c>tm</c> to its end (at most a minute); see <see cref="Start"/>.</summary>
    public async Task<TmRun> TmAsync(IEnumerable<string> args, IDictionary<string, string?>? environment = null, string? home = null)
    {
        await using var tm = Start(args, environment, home);
        return await tm.WaitForExitAsync(TimeSpan.FromSeconds(60));
    }

    public Task<TmRun> TmAsync(params string[] args) => TmAsync(args, null, null);

    /// <summary>Runs <c>tm</c> with the admin key.</summary>
    public Task<TmRun> AdminTmAsync(params string[] args) =>
        TmAsync(args, new Dictionary<string, string?> { ["TASKMANAGER_API_KEY"] = Credentials.AdminKey });

    private async Task InstallAsync()
    {
        var packages = Path.Combine(root, "nupkg");
        // Built with the tests (a project reference); no build server is left running after the pack.
        await DotnetAsync("pack", Path.Combine(Repository.Root, "TaskManager.Cli"), "-c", BuildOutput.Configuration, "--no-build", "--disable-build-servers", "-o", packages);
        var config = Path.Combine(root, "nuget.config");
        await File.WriteAllTextAsync(config, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{packages}" />
              </packageSources>
            </configuration>
            """);
        await DotnetAsync("tool", "install", "--tool-path", Path.Combine(root, "tools"), "--configfile", config, "TaskManager.Cli");
    }

    private async Task DotnetAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["NUGET_PACKAGES"] = Path.Combine(root, "packages");
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"dotnet {string.Join(' ', args)} exited with {process.ExitCode}:\n{await output}\n{await errors}");
        }
    }

    public async Task DisposeAsync()
    {
        await Fleet.DisposeAsync();
        TempFolder.Delete(root);
    }
}

/// <summary>What a <c>tm</c> run printed, and when each piece arrived.</summary>
public sealed record TmRun(int ExitCode, string Stdout, string Stderr, IReadOnlyList<TimedText> StdoutReads, IReadOnlyList<TimedText> StderrLines)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout:\n{Stdout}\n--- stderr:\n{Stderr}";
}

/// <summary>Text from a process and the moment (UTC) the test read it.</summary>
public sealed record TimedText(DateTimeOffset At, string Text);

/// <summary>
/// A running <c>tm</c>: its stdout read as it comes, each read timestamped (tokens are written
/// without line ends); its stderr line by line, timestamped too.
/// </summary>
public sealed class TmProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly List<TimedText> reads = [];
    private readonly List<TimedText> errorLines = [];
    private readonly Task readingOut;
    private readonly TaskCompletionSource errorsDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private TmProcess(Process process)
    {
        this.process = process;
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                errorsDone.TrySetResult();
                return;
            }
            lock (errorLines)
            {
                errorLines.Add(new TimedText(DateTimeOffset.UtcNow, e.Data));
            }
        };
        process.BeginErrorReadLine();
        readingOut = ReadOutAsync();
    }

    public int Id => process.Id;

    public static TmProcess Start(ProcessStartInfo start)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = true; // not a terminal: tm must not wait for an answer
        start.UseShellExecute = false;
        return new TmProcess(Process.Start(start)!);
    }

    public string Stdout
    {
        get
        {
            lock (reads)
            {
                return string.Concat(reads.Select(r => r.Text));
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (errorLines)
            {
                return string.Join('\n', errorLines.Select(l => l.Text));
            }
        }
    }

    /// <summary>Waits until what tm printed on stdout satisfies <paramref name="condition"/>; fails if it exits first.</summary>
    public Task WaitForStdoutAsync(Func<string, bool> condition, TimeSpan timeout, string what) =>
        Wait.UntilAsync(() =>
        {
            if (condition(Stdout))
            {
                return true;
            }
            return process.HasExited && readingOut.IsCompleted
                ? throw new InvalidOperationException($"tm exited ({process.ExitCode}) before {what}:\n{Stdout}\n{Stderr}")
                : false;
        }, timeout, what);

    /// <summary>Types <paramref name="text"/> on tm's stdin.</summary>
    public async Task TypeAsync(string text)
    {
        await process.StandardInput.WriteAsync(text);
        await process.StandardInput.FlushAsync();
    }

    /// <summary>Sends SIGINT, as Ctrl+C in a terminal does.</summary>
    public void Interrupt()
    {
        using var kill = Process.Start("kill", $"-INT {process.Id}");
        kill.WaitForExit();
    }

    public async Task<TmRun> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
            await readingOut.WaitAsync(timeout);
            await errorsDone.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"tm did not exit within {timeout.TotalSeconds:0} s:\n{Stdout}\n{Stderr}");
        }
        lock (reads)
        {
            lock (errorLines)
            {
                return new TmRun(process.ExitCode, Stdout, Stderr, reads.ToArray(), errorLines.ToArray());
            }
        }
    }

    private async Task ReadOutAsync()
    {
        var decoder = Encoding.UTF8.GetDecoder();
        var bytes = new byte[4096];
        var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
        var stream = process.StandardOutput.BaseStream;
        int read;
        while ((read = await stream.ReadAsync(bytes)) > 0)
        {
            var count = decoder.GetChars(bytes, 0, read, chars, 0);
            lock (reads)
            {
                reads.Add(new TimedText(DateTimeOffset.UtcNow, new string(chars, 0, count)));
            }
        }
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
}
