using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using StackExchange.Redis;

namespace TaskManager.Bench;

/// <summary>A child process whose output is kept in a log file (never on the bench's console).</summary>
public sealed class Child : IAsyncDisposable
{
    private readonly Process process;
    private readonly StreamWriter log;

    private Child(Process process, StreamWriter log)
    {
        this.process = process;
        this.log = log;
    }

    public int Pid => process.Id;

    public bool Exited => process.HasExited;

    public static Child Start(string file, IEnumerable<string> arguments, string logPath,
        IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        var log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {file}.");
        process.OutputDataReceived += (_, e) => Write(log, e.Data);
        process.ErrorDataReceived += (_, e) => Write(log, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new Child(process, log);
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (log)
        {
            log.WriteLine(line);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            // SIGTERM first, as a deployment stops a service; then kill.
            Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])?.WaitForExit();
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
        process.Dispose();
        lock (log)
        {
            log.Dispose();
        }
    }

    /// <summary>CPU seconds (user + system) this process has used so far, from /proc.</summary>
    public double CpuSeconds() => CpuSecondsOf(process.Id);

    public static double CpuSecondsOf(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // The command name (field 2) is in parentheses and may hold spaces: count from after it.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks / 100.0; // USER_HZ is 100 on Linux
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>A redis-server on loopback with a password and AOF (everysec), as the AppHost runs it.</summary>
public sealed class Redis : IAsyncDisposable
{
    private Child child = null!;

    public int Port { get; private set; }

    public string Password { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    public string ConnectionString => $"127.0.0.1:{Port},password={Password},allowAdmin=true";

    public string Url => $"redis://:{Password}@127.0.0.1:{Port}/0";

    public ConnectionMultiplexer Connection { get; private set; } = null!;

    public IServer Server => Connection.GetServer("127.0.0.1", Port);

    public int Pid => child.Pid;

    public static async Task<Redis> StartAsync(string logDirectory)
    {
        var redis = new Redis { Port = Child.FreePort() };
        var data = Directory.CreateTempSubdirectory("taskmanager-bench-redis-").FullName;
        redis.child = Child.Start("redis-server",
        [
            "--port", redis.Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
            "--requirepass", redis.Password, "--dir", data, "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "",
        ], Path.Combine(logDirectory, "redis.log"));
        // Short tries over a long deadline: a full run once lost its last peer to one slow start
        // (the server was ready, the connection attempts had used up 10 s).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                redis.Connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",connectTimeout=2000");
                await redis.Connection.GetDatabase().PingAsync();
                return redis;
            }
            catch (RedisConnectionException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    public string Version => Server.Info("server").SelectMany(g => g).First(p => p.Key == "redis_version").Value;

    /// <summary>The sum of <c>calls</c> over INFO commandstats, less the INFO calls themselves.</summary>
    public async Task<long> CommandCountAsync()
    {
        long total = 0;
        foreach (var group in await Server.InfoAsync("commandstats"))
        {
            foreach (var pair in group)
            {
                if (pair.Key == "cmdstat_info")
                {
                    continue;
                }
                var calls = pair.Value.Split(',')[0];
                total += long.Parse(calls["calls=".Length..], CultureInfo.InvariantCulture);
            }
        }
        return total;
    }

    public async Task<long> UsedMemoryAsync()
    {
        var memory = (await Server.InfoAsync("memory")).SelectMany(g => g).First(p => p.Key == "used_memory").Value;
        return long.Parse(memory, CultureInfo.InvariantCulture);
    }

    /// <summary>Deletes every key under a prefix (SCAN and UNLINK), leaving the others.</summary>
    public async Task DeletePrefixAsync(string prefix)
    {
        var db = Connection.GetDatabase();
        var batch = new List<RedisKey>(1000);
        await foreach (var key in Server.KeysAsync(pattern: prefix + "*", pageSize: 5000))
        {
            batch.Add(key);
            if (batch.Count == 1000)
            {
                await db.KeyDeleteAsync([.. batch], CommandFlags.FireAndForget);
                batch.Clear();
            }
        }
        if (batch.Count > 0)
        {
            await db.KeyDeleteAsync([.. batch]);
        }
        await db.PingAsync();
    }

    /// <summary>BGREWRITEAOF, and waits until no rewrite runs or is scheduled.</summary>
    public async Task RewriteAppendOnlyFileAsync()
    {
        async Task<bool> Busy()
        {
            var info = (await Server.InfoAsync("persistence")).SelectMany(g => g).ToDictionary(p => p.Key, p => p.Value);
            return info.GetValueOrDefault("aof_rewrite_in_progress") == "1" || info.GetValueOrDefault("aof_rewrite_scheduled") == "1";
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (await Busy() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        try
        {
            await Server.ExecuteAsync("BGREWRITEAOF");
        }
        catch (RedisServerException)
        {
            // One is already running or scheduled: waiting for it below does as well.
        }
        while (await Busy() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Connection.DisposeAsync();
        await child.DisposeAsync();
    }
}
