using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port with a password, started for a test class
/// (or collection) and stopped after it. Tests call <see cref="FlushAsync"/> to start empty.
/// </summary>
public sealed class RedisServer : ITestRedis
{
    private Process? process;
    private string? dataDirectory;

    public int Port { get; private set; }

    public string Password { get; } = "test-" + Guid.NewGuid().ToString("N");

    public string ConnectionString => $"127.0.0.1:{Port},password={Password},abortConnect=false";

    public ConnectionMultiplexer Connection { get; private set; } = null!;

    public IDatabase Db => Connection.GetDatabase();

    public IEnumerable<IServer> Primaries => TestRedis.Primaries(Connection);

    public Task FlushAsync() => TestRedis.OnEveryPrimaryAsync(Connection, "FLUSHALL");

    public Task FlushFunctionsAsync() => TestRedis.OnEveryPrimaryAsync(Connection, "FUNCTION", "FLUSH");

    public async Task InitializeAsync()
    {
        var executable = FindRedisServer() ?? throw new InvalidOperationException(
            "These tests need redis-server on PATH (Debian: 'apt-get install redis-server'); .ci/run installs it.");
        Port = FreePort();
        dataDirectory = Directory.CreateTempSubdirectory("taskmanager-redis-").FullName;
        await StartAsync(executable);
        Connection = await ConnectionMultiplexer.ConnectAsync(ConnectionString);
    }

    /// <summary>Starts (or restarts, on the same data directory and port) the server.</summary>
    public async Task StartAsync(string? executable = null) =>
        process = await LaunchAsync(executable ?? FindRedisServer()!, Port, Password, dataDirectory!);

    /// <summary>
    /// Starts a <c>redis-server</c> on loopback at <paramref name="port"/> with a password and AOF
    /// (<c>everysec</c>, as the AppHost runs it) in <paramref name="directory"/>, with
    /// <paramref name="extra"/> arguments, and waits until it accepts connections.
    /// </summary>
    internal static async Task<Process> LaunchAsync(string executable, int port, string password, string directory, params string[] extra)
    {
        var start = new ProcessStartInfo(executable)
        {
            ArgumentList =
            {
                "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--bind", "127.0.0.1",
                "--requirepass", password,
                "--dir", directory,
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in extra)
        {
            start.ArgumentList.Add(argument);
        }
        var started = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        started.OutputDataReceived += (_, e) => Append(e.Data);
        started.ErrorDataReceived += (_, e) => Append(e.Data);
        started.BeginOutputReadLine();
        started.BeginErrorReadLine();
        await Wait.UntilAsync(async () =>
        {
            if (started.HasExited)
            {
                started.WaitForExit();
                lock (output)
                {
                    throw new InvalidOperationException($"redis-server exited with {started.ExitCode}:\n{output}");
                }
            }
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(10), "redis-server to accept connections");
        return started;

        void Append(string? line)
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

    /// <summary>Kills the server abruptly, as a crash would.</summary>
    public void Kill()
    {
        process?.Kill();
        process?.WaitForExit();
    }

    public async Task DisposeAsync()
    {
        Connection?.Dispose();
        Kill();
        process?.Dispose();
        TempFolder.Delete(dataDirectory);
        await Task.CompletedTask;
    }

    public static string? FindRedisServer() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(dir => Path.Combine(dir, "redis-server"))
            .FirstOrDefault(File.Exists);

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
