using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>
/// The Lua scripts, one per state change, loaded into Redis as one function library (Redis 7
/// functions): the key definitions (<see cref="RedisKeys.LuaDefinitions"/>), the state machine
/// (<see cref="TaskState.Transitions"/>), <c>common.lua</c>, then each script's own file as a
/// function. The shared part runs once, when the library loads, not on every call as it would
/// with EVALSHA: with EVALSHA, defining its 60-odd functions cost about 13 µs of Redis time per
/// call, a third of a one-task lease. Each property names a function; <see cref="EvaluateAsync"/>
/// calls it (FCALL).
/// </summary>
/// <remarks>
/// The library is named after a hash of its text, and its functions after the library, so API
/// versions (and key prefixes) side by side in one Redis each call their own. A Redis without the
/// library (new, or restarted without persistence) gets it on the first call that misses it.
/// </remarks>
public sealed class LuaScripts
{
    /// <summary>The library's text, for FUNCTION LOAD.</summary>
    public string Library { get; }

    /// <summary>The library's name: <c>tm_</c> and 16 hex digits of its text's SHA-1.</summary>
    public string LibraryName { get; }

    /// <summary>
    /// FCALL of <paramref name="function"/> (one of this object's properties). Where Redis does not
    /// have the library, it is loaded (FUNCTION LOAD REPLACE) and the call made again.
    /// </summary>
    public async Task<RedisResult> EvaluateAsync(IDatabase db, string function, RedisValue[] values)
    {
        var args = new object[values.Length + 2];
        args[0] = function;
        args[1] = 0; // no KEYS: the scripts name their keys from the prefix
        for (var i = 0; i < values.Length; i++)
        {
            args[i + 2] = values[i];
        }
        try
        {
            return await db.ExecuteAsync("FCALL", args).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("Function not found", StringComparison.OrdinalIgnoreCase))
        {
            await db.ExecuteAsync("FUNCTION", "LOAD", "REPLACE", Library).ConfigureAwait(false);
            return await db.ExecuteAsync("FCALL", args).ConfigureAwait(false);
        }
    }

    public LuaScripts(RedisKeys keys)
    {
        // Every embedded script but common.lua is a function, in a fixed order (the library's name
        // is a hash of its text).
        var names = typeof(LuaScripts).Assembly.GetManifestResourceNames()
            .Where(r => r.StartsWith(ResourcePrefix, StringComparison.Ordinal) && r.EndsWith(".lua", StringComparison.Ordinal))
            .Select(r => r[ResourcePrefix.Length..^".lua".Length])
            .Where(name => name != "common")
            .Order(StringComparer.Ordinal)
            .ToArray();
        // ARGV is each call's arguments (a script reads it as with EVAL). Each script's body runs
        // as a function, so that the writes it deferred (see `later` in common.lua) are made after
        // any of its returns; the state a call keeps (deferred writes, event state) starts empty.
        var code = new StringBuilder("local ARGV\n")
            .Append(keys.LuaDefinitions()).Append(TransitionsTable()).Append(TaskTypesTable()).Append(BucketsTable())
            .Append($"local DEFAULT_TENANT = '{Tenants.Default}'\n").Append(QueueOrder.LuaFunction())
            .Append(Load("common"))
            .Append("\nlocal function run(body, args)\n  ARGV = args\n  reset_state()\n  local result = body()\n  flush_writes()\n  return result\nend\n");
        foreach (var name in names)
        {
            code.Append("\nlocal function script_").Append(name).Append("()\n").Append(Load(name)).Append("\nend\n");
        }
        var hash = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(code.ToString())))[..16];
        LibraryName = "tm_" + hash;
        foreach (var name in names)
        {
            code.Append("redis.register_function('").Append(LibraryName).Append('_').Append(name)
                .Append("', function(_, args) return run(script_").Append(name).Append(", args) end)\n");
        }
        Library = $"#!lua name={LibraryName}\n" + code;
        string Function(string name) => names.Contains(name)
            ? LibraryName + "_" + name
            : throw new InvalidOperationException($"The Lua script '{name}' is not embedded in the assembly.");
        Submit = Function("submit");
        SubmitBatch = Function("submit_batch");
        Lease = Function("lease");
        Complete = Function("complete");
        CompleteBatch = Function("complete_batch");
        Fail = Function("fail");
        Progress = Function("progress");
        Cancel = Function("cancel");
        Delete = Function("delete");
        Get = Function("get");
        Events = Function("events");
        List = Function("list");
        Register = Function("register");
        Heartbeat = Function("heartbeat");
        TouchWorkers = Function("touch_workers");
        Requeue = Function("requeue");
        AttachJob = Function("attach_job");
        SweepDeadlines = Function("sweep_deadlines");
        SweepLeases = Function("sweep_leases");
        SweepScheduled = Function("sweep_scheduled");
        SweepRetention = Function("sweep_retention");
        SweepWorkers = Function("sweep_workers");
        Drain = Function("drain");
        Workers = Function("workers");
        PutArtifact = Function("put_artifact");
        GetArtifact = Function("get_artifact");
        Stats = Function("stats");
        Pause = Function("pause");
    }

    public string Submit { get; }
    public string SubmitBatch { get; }
    public string Lease { get; }
    public string Complete { get; }
    public string CompleteBatch { get; }
    public string Fail { get; }
    public string Progress { get; }
    public string Cancel { get; }
    public string Delete { get; }
    public string Get { get; }
    public string Events { get; }
    public string List { get; }
    public string Register { get; }
    public string Heartbeat { get; }
    public string TouchWorkers { get; }
    public string Requeue { get; }
    public string AttachJob { get; }
    public string SweepDeadlines { get; }
    public string SweepLeases { get; }
    public string SweepScheduled { get; }
    public string SweepRetention { get; }
    public string SweepWorkers { get; }
    public string Drain { get; }
    public string Workers { get; }
    public string PutArtifact { get; }
    public string GetArtifact { get; }
    public string Stats { get; }
    public string Pause { get; }

    /// <summary>The state machine as a Lua table: <c>TRANSITIONS[from][to] == true</c>.</summary>
    internal static string TransitionsTable()
    {
        var lua = new StringBuilder("local TRANSITIONS = {\n");
        foreach (var (from, targets) in TaskState.Transitions)
        {
            lua.Append("  ").Append(from).Append(" = {");
            lua.AppendJoin(", ", targets.Order(StringComparer.Ordinal).Select(t => $"{t} = true"));
            lua.Append("},\n");
        }
        return lua.Append("}\n").ToString();
    }

    /// <summary>The task types as a Lua list: <c>TASK_TYPES</c>.</summary>
    internal static string TaskTypesTable() =>
        "local TASK_TYPES = {" + string.Join(", ", TaskTypes.All.Select(t => $"'{t}'")) + "}\n";

    /// <summary>The histogram bucket bounds (ms) as a Lua list: <c>BUCKETS</c>.</summary>
    internal static string BucketsTable() => "local BUCKETS = {" + string.Join(", ", Histogram.BoundsMs) + "}\n";

    private const string ResourcePrefix = "TaskManager.Scripts.";

    private static string Load(string name)
    {
        using var stream = typeof(LuaScripts).Assembly.GetManifestResourceStream($"{ResourcePrefix}{name}.lua")
            ?? throw new InvalidOperationException($"The Lua script '{name}' is not embedded in the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
