using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port with a password, started for a test class
/// (or collection) and stopped after it. Tests call <see cref="FlushAsync"/> to start empty.
/// </summary>
public sealed class RedisServer : IAsyncLifetime
{
    private Process? process;
    private string? dataDirectory;

    public int Port { get; private set; }

    public string Password { get; } = "test-" + Guid.NewGuid().ToString("N");

    public string ConnectionString => $"127.0.0.1:{Port},password={Password},abortConnect=false";

    public ConnectionMultiplexer Connection { get; private set; } = null!;

    public IDatabase Db => Connection.GetDatabase();

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
    public async Task StartAsync(string? executable = null)
    {
        executable ??= FindRedisServer()!;
        process = Process.Start(new ProcessStartInfo(executable)
        {
            ArgumentList =
            {
                "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--bind", "127.0.0.1",
                "--requirepass", Password,
                "--dir", dataDirectory!,
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await Wait.UntilAsync(async () =>
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, Port);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(10), "redis-server to accept connections");
    }

    /// <summary>Kills the server abruptly, as a crash would.</summary>
    public void Kill()
    {
        process?.Kill();
        process?.WaitForExit();
    }

    public Task FlushAsync() => Db.ExecuteAsync("FLUSHALL");

    public async Task DisposeAsync()
    {
        Connection?.Dispose();
        Kill();
        process?.Dispose();
        if (dataDirectory is not null)
        {
            try
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
            catch (IOException)
            {
                // A temp folder left behind is harmless.
            }
        }
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
