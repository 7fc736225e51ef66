using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using StackExchange.Redis;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// Watches Redis's <c>MONITOR</c> stream to count the round trips an operation makes. MONITOR
/// marks the commands a script runs with <c>[db lua]</c>; every other line is a command a client
/// sent, one round trip each (StackExchange.Redis does not pipeline a single awaited call).
/// </summary>
public sealed partial class RedisMonitor : IAsyncDisposable
{
    // Commands StackExchange.Redis sends on its own (keep-alive, topology); not part of an operation.
    private static readonly HashSet<string> Housekeeping = ["ping", "echo", "info", "cluster", "config", "client", "role", "sentinel", "subscribe", "time", "select"];

    private readonly TcpClient client;
    private readonly StreamReader reader;

    private RedisMonitor(TcpClient client, StreamReader reader)
    {
        this.client = client;
        this.reader = reader;
    }

    public static async Task<RedisMonitor> StartAsync(RedisServer redis)
    {
        var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", redis.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.UTF8.GetBytes($"AUTH {redis.Password}\r\nMONITOR\r\n"));
        var reader = new StreamReader(stream, Encoding.UTF8);
        (await reader.ReadLineAsync()).ShouldStartWith("+OK");
        (await reader.ReadLineAsync()).ShouldStartWith("+OK");
        return new RedisMonitor(client, reader);
    }

    /// <summary>
    /// Runs <paramref name="operation"/> between two markers sent from the test's own connection
    /// and returns the client commands (not those run inside Lua) that reached Redis in between.
    /// </summary>
    public Task<IReadOnlyList<string>> ClientCommandsDuringAsync(IDatabase markers, Func<Task> operation) =>
        CommandsDuringAsync(markers, operation, includeLua: false);

    /// <summary>Every command that reached Redis during <paramref name="operation"/>, those run inside Lua too.</summary>
    public Task<IReadOnlyList<string>> CommandsDuringAsync(IDatabase markers, Func<Task> operation) =>
        CommandsDuringAsync(markers, operation, includeLua: true);

    private async Task<IReadOnlyList<string>> CommandsDuringAsync(IDatabase markers, Func<Task> operation, bool includeLua)
    {
        var id = Guid.NewGuid().ToString("N");
        await markers.ExecuteAsync("ECHO", $"start-{id}");
        await operation();
        await markers.ExecuteAsync("ECHO", $"end-{id}");

        var commands = new List<string>();
        var started = false;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.Contains($"start-{id}", StringComparison.Ordinal))
            {
                started = true;
            }
            else if (line.Contains($"end-{id}", StringComparison.Ordinal))
            {
                return commands;
            }
            else if (started && MonitorLine().Match(line) is { Success: true } match &&
                (includeLua || match.Groups["source"].Value != "lua") &&
                !Housekeeping.Contains(match.Groups["command"].Value.ToLowerInvariant()))
            {
                commands.Add(line);
            }
        }
        throw new InvalidOperationException("The MONITOR stream ended before the end marker.");
    }

    /// <summary>Reads the stream until a line satisfies <paramref name="predicate"/>.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> predicate, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        while (await reader.ReadLineAsync(cancel.Token) is { } line)
        {
            if (predicate(line))
            {
                return line;
            }
        }
        throw new InvalidOperationException("The MONITOR stream ended.");
    }

    public async ValueTask DisposeAsync()
    {
        client.Dispose();
        await Task.CompletedTask;
    }

    // +1764135555.123456 [0 127.0.0.1:53211] "fcall" "..." ; [0 lua] for commands a script runs.
    [GeneratedRegex(@"^\+\d+\.\d+ \[\d+ (?<source>[^\]]+)\] ""(?<command>[^""]+)""")]
    private static partial Regex MonitorLine();
}

internal static class StringAssertions
{
    public static void ShouldStartWith(this string? actual, string expected)
    {
        Assert.NotNull(actual);
        Assert.StartsWith(expected, actual);
    }
}
