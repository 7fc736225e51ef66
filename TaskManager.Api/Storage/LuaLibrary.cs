using System.Security.Cryptography;
using System.Text;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>The scripts, one per state change or read: each is a file <c>Scripts/{snake_case}.lua</c>.</summary>
public enum Script
{
    Submit, SubmitBatch, Lease, Complete, CompleteBatch, Fail, ProgressBatch, Cancel, Delete, Get, Events, List,
    Register, Heartbeat, TouchWorkers, Requeue, AttachJob, SweepDeadlines, SweepLeases, SweepScheduled,
    SweepRetention, SweepWorkers, Drain, Workers, PutArtifact, GetArtifact, Stats, Pause, SweepStartDeadlines, Retry,
    RetryEnded, TakeWebhooks, CreateDelivery, SetDeliveryJob, RecordDelivery, Deliveries, Redeliver, TakeRedeliveries,
}

/// <summary>
/// The scripts as one Redis function library (Redis 7 functions): a prelude generated from the C#
/// that defines what both sides share (key templates, the state machine, task types, histogram
/// buckets, the queue order, the task values a submission passes, the reply shapes), the shared
/// files in <c>Scripts/lib/</c> in a fixed order, then each script's file as a function. The
/// shared part runs once, when the library loads, not on every call as it would with EVALSHA.
/// </summary>
/// <remarks>
/// The library is named after a hash of its text, and its functions after the library, so API
/// versions (and key prefixes) side by side in one Redis each call their own.
/// </remarks>
public sealed class LuaLibrary
{
    /// <summary>The shared files, in the order they are prepended: each may use those before it.</summary>
    internal static readonly string[] SharedFiles = ["deferred", "records", "events", "lifecycle", "placement"];

    private readonly string[] functions;

    public LuaLibrary(RedisKeys keys)
    {
        var scripts = Enum.GetValues<Script>();
        var embedded = typeof(LuaLibrary).Assembly.GetManifestResourceNames()
            .Where(r => r.StartsWith(ScriptPrefix, StringComparison.Ordinal) && !r.StartsWith(ScriptPrefix + "lib.", StringComparison.Ordinal))
            .Select(r => r[ScriptPrefix.Length..^".lua".Length])
            .ToHashSet(StringComparer.Ordinal);
        if (embedded.Except(scripts.Select(FileName)).FirstOrDefault() is { } stray)
        {
            throw new InvalidOperationException($"The Lua script '{stray}.lua' has no member in the Script enum.");
        }

        // Each script's body runs as a function, with KEYS and ARGV set as EVAL would set them, so
        // that the writes it deferred (see deferred.lua) and its followers' wake-ups (one per task:
        // see events.lua) are made after any of its returns; what a call keeps (deferred writes,
        // events' task state and wake-ups) starts empty, since the library's shared
        // part outlives a call and one that failed half-way may have left some.
        var code = new StringBuilder(SharedCode(keys)).Append("""

            local function run(body, keys, args)
              KEYS, ARGV = keys, args
              clear_deferred()
              clear_event_state()
              local result = body()
              flush_writes()
              flush_wakes()
              return result
            end

            """);
        foreach (var script in scripts)
        {
            code.Append("\nlocal function script_").Append(FileName(script)).Append("()\n").Append(Load(FileName(script))).Append("\nend\n");
        }
        var hash = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(code.ToString())))[..16];
        Name = "tm_" + hash;
        functions = scripts.Select(s => $"{Name}_{FileName(s)}").ToArray();
        foreach (var script in scripts)
        {
            code.Append("redis.register_function('").Append(FunctionOf(script)).Append("', function(keys, args) return run(script_")
                .Append(FileName(script)).Append(", keys, args) end)\n");
        }
        Text = $"#!lua name={Name}\n" + code;
    }

    /// <summary>The library's text, for FUNCTION LOAD.</summary>
    public string Text { get; }

    /// <summary>The library's name: <c>tm_</c> and 16 hex digits of its text's SHA-1.</summary>
    public string Name { get; }

    /// <summary>The function that runs <paramref name="script"/>.</summary>
    public string FunctionOf(Script script) => functions[(int)script];

    /// <summary>What every script has: <c>KEYS</c> and <c>ARGV</c>, the prelude, then the shared files.</summary>
    internal static string SharedCode(RedisKeys keys)
    {
        var code = new StringBuilder("local KEYS, ARGV\n").Append(Prelude(keys));
        foreach (var file in SharedFiles)
        {
            code.Append("\n-- lib/").Append(file).Append(".lua\n").Append(Load("lib." + file));
        }
        return code.ToString();
    }

    /// <summary>What the scripts share with the C#, generated from it.</summary>
    internal static string Prelude(RedisKeys keys) => new StringBuilder()
        .Append(keys.LuaDefinitions())
        .Append(TransitionsTable())
        .Append("local RETRYABLE = {").AppendJoin(", ", TaskState.Retryable.Select(s => $"{s} = true")).Append("}\n")
        .Append("local TASK_TYPES = {").AppendJoin(", ", TaskTypes.All.Select(Lua.Quote)).Append("}\n")
        .Append("local BUCKETS = {").AppendJoin(", ", Histogram.BoundsMs).Append("}\n")
        .Append("local DEFAULT_TENANT = ").Append(Lua.Quote(Tenants.Default)).Append('\n')
        .Append(QueueOrder.LuaDefinitions())
        .Append(TaskValues.LuaDefinitions())
        .Append(Replies.LuaDefinitions())
        .ToString();

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

    internal static string FileName(Script script) => Lua.SnakeCase(script.ToString());

    private const string ScriptPrefix = "TaskManager.Scripts.";

    private static string Load(string name)
    {
        using var stream = typeof(LuaLibrary).Assembly.GetManifestResourceStream($"{ScriptPrefix}{name}.lua")
            ?? throw new InvalidOperationException($"The Lua script '{name}.lua' is not embedded in the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}

/// <summary>Writing Lua from C#.</summary>
internal static class Lua
{
    /// <summary>A Lua string literal.</summary>
    public static string Quote(string text) => "'" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";

    /// <summary><c>MaxAttempts</c> as <c>max_attempts</c>.</summary>
    public static string SnakeCase(string name)
    {
        var text = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                text.Append('_');
            }
            text.Append(char.ToLowerInvariant(name[i]));
        }
        return text.ToString();
    }
}
