using System.Diagnostics;
using System.Globalization;
using System.Net;
using StackExchange.Redis;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A real Redis Cluster of three primaries on free loopback ports, with a password and AOF, made
/// as a user makes one: <c>redis-server --cluster-enabled yes</c> three times, joined with
/// <c>redis-cli --cluster create ... --cluster-replicas 0</c>. Started for a test class and
/// stopped after it; tests call <see cref="FlushAsync"/> to start empty.
/// </summary>
public sealed class RedisCluster : ITestRedis
{
    private const int Nodes = 3;
    private readonly List<Process> processes = [];
    private string? dataDirectory;

    public string Password { get; } = "test-" + Guid.NewGuid().ToString("N");

    public IReadOnlyList<int> Ports { get; private set; } = [];

    /// <summary>Every node, as a client that knows only one of them would list them all the same.</summary>
    public string ConnectionString =>
        string.Join(',', Ports.Select(p => $"127.0.0.1:{p}")) + $",password={Password},abortConnect=false";

    public ConnectionMultiplexer Connection { get; private set; } = null!;

    public IDatabase Db => Connection.GetDatabase();

    public IEnumerable<IServer> Primaries => TestRedis.Primaries(Connection);

    public Task FlushAsync() => TestRedis.OnEveryPrimaryAsync(Connection, "FLUSHALL");

    public Task FlushFunctionsAsync() => TestRedis.OnEveryPrimaryAsync(Connection, "FUNCTION", "FLUSH");

    public async Task InitializeAsync()
    {
        var executable = RedisServer.FindRedisServer() ?? throw new InvalidOperationException(
            "These tests need redis-server on PATH (Debian: 'apt-get install redis-server'); .ci/run installs it.");
        dataDirectory = Directory.CreateTempSubdirectory("taskmanager-cluster-").FullName;
        var ports = new List<int>();
        for (var i = 0; i < Nodes; i++)
        {
            var port = RedisServer.FreePort();
            var directory = Path.Combine(dataDirectory, port.ToString(CultureInfo.InvariantCulture));
            Directory.CreateDirectory(directory);
            // The bus port named, rather than the port plus 10,000, which past 55,535 is no port.
            processes.Add(await RedisServer.LaunchAsync(executable, port, Password, directory,
                "--cluster-enabled", "yes", "--cluster-port", RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
                "--cluster-config-file", "nodes.conf", "--masterauth", Password, "--cluster-node-timeout", "5000"));
            ports.Add(port);
        }
        Ports = ports;
        await CreateAsync();
        Connection = await ConnectionMultiplexer.ConnectAsync(ConnectionString);
        await Wait.UntilAsync(() => Primaries.Count() == Nodes,
            TimeSpan.FromSeconds(30), "the client to see the cluster's three primaries");
    }

    /// <summary>The node that serves <paramref name="key"/>'s slot now.</summary>
    public async Task<IServer> OwnerOfAsync(RedisKey key) =>
        Connection.GetServer((await Db.IdentifyEndpointAsync(key))!);

    /// <summary>
    /// Moves the slot of <paramref name="key"/>, with its keys, to another primary, as a resharding
    /// does (CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE); returns the new owner.
    /// </summary>
    public async Task<IServer> MoveSlotOfAsync(RedisKey key)
    {
        var slot = Connection.HashSlot(key);
        var source = await OwnerOfAsync(key);
        var target = Primaries.First(s => !s.EndPoint.Equals(source.EndPoint));
        var sourceId = (string)(await source.ExecuteAsync("CLUSTER", "MYID"))!;
        var targetId = (string)(await target.ExecuteAsync("CLUSTER", "MYID"))!;
        var targetPort = ((IPEndPoint)target.EndPoint).Port;

        await target.ExecuteAsync("CLUSTER", "SETSLOT", slot, "IMPORTING", sourceId);
        await source.ExecuteAsync("CLUSTER", "SETSLOT", slot, "MIGRATING", targetId);
        while (true)
        {
            var keys = (RedisResult[])(await source.ExecuteAsync("CLUSTER", "GETKEYSINSLOT", slot, 100))!;
            if (keys.Length == 0)
            {
                break;
            }
            var migrate = new List<object> { "127.0.0.1", targetPort, "", 0, 5000, "AUTH", Password, "KEYS" };
            migrate.AddRange(keys.Select(k => (object)(string)k!));
            await source.ExecuteAsync("MIGRATE", migrate.ToArray());
        }
        foreach (var server in Primaries)
        {
            await server.ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", targetId);
        }
        await Wait.UntilAsync(async () => (await OwnerOfAsync(key)).EndPoint.Equals(target.EndPoint) ||
            await RefreshedAsync(), TimeSpan.FromSeconds(30), $"the client to see slot {slot} on its new node");
        return target;

        async Task<bool> RefreshedAsync()
        {
            // The client learns the new owner from a MOVED answer or a reconfiguration.
            await Connection.ConfigureAsync();
            return (await OwnerOfAsync(key)).EndPoint.Equals(target.EndPoint);
        }
    }

    private async Task CreateAsync()
    {
        var cli = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(dir => Path.Combine(dir, "redis-cli")).FirstOrDefault(File.Exists) ?? throw new InvalidOperationException(
                "The cluster tests need redis-cli on PATH to make the cluster (Debian: 'apt-get install redis-server' brings it).");
        var create = new ProcessStartInfo(cli)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["-a", Password, "--no-auth-warning", "--cluster", "create"])
        {
            create.ArgumentList.Add(argument);
        }
        foreach (var port in Ports)
        {
            create.ArgumentList.Add($"127.0.0.1:{port}");
        }
        foreach (var argument in (string[])["--cluster-replicas", "0", "--cluster-yes"])
        {
            create.ArgumentList.Add(argument);
        }
        using var creating = Process.Start(create) ?? throw new InvalidOperationException("redis-cli did not start.");
        var output = creating.StandardOutput.ReadToEndAsync();
        var errors = creating.StandardError.ReadToEndAsync();
        await creating.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        if (creating.ExitCode != 0)
        {
            throw new InvalidOperationException($"redis-cli --cluster create failed ({creating.ExitCode}): {await output}{await errors}");
        }
        // Each node agrees that every slot is served before the tests start.
        foreach (var port in Ports)
        {
            using var node = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{port},password={Password}");
            var server = node.GetServer(node.GetEndPoints()[0]);
            await Wait.UntilAsync(async () => ((string)(await server.ExecuteAsync("CLUSTER", "INFO"))!).Contains("cluster_state:ok", StringComparison.Ordinal),
                TimeSpan.FromSeconds(30), $"node {port} to report cluster_state:ok");
        }
    }

    public async Task DisposeAsync()
    {
        Connection?.Dispose();
        foreach (var process in processes)
        {
            if (!process.HasExited)
            {
                process.Kill();
                await process.WaitForExitAsync();
            }
            process.Dispose();
        }
        TempFolder.Delete(dataDirectory);
    }
}
