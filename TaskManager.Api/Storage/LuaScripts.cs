using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>
/// The Lua scripts, one per state change, each assembled from the key definitions
/// (<see cref="RedisKeys.LuaDefinitions"/>), the state machine (<see cref="TaskState.Transitions"/>),
/// <c>common.lua</c> and its own file. <see cref="EvaluateAsync"/> runs one by its SHA-1, computed
/// once here: StackExchange.Redis would otherwise look each call's script text (over 10 KB with
/// the prelude) up in a table, hashing it every time (about 7% of the API's CPU under load).
/// </summary>
public sealed class LuaScripts
{
    private readonly Dictionary<object, byte[]> hashes = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// EVALSHA of <paramref name="script"/> (one of this object's properties). Where Redis does not
    /// have it (after a restart), the script's text is sent once and EVALSHA works again after.
    /// </summary>
    public async Task<RedisResult> EvaluateAsync(IDatabase db, string script, RedisValue[] values)
    {
        var hash = hashes[script];
        try
        {
            return await db.ScriptEvaluateAsync(hash, values: values).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await db.ScriptEvaluateAsync(script, values: values).ConfigureAwait(false);
        }
    }

    public LuaScripts(RedisKeys keys)
    {
        var prelude = keys.LuaDefinitions() + TransitionsTable() + TaskTypesTable() + BucketsTable() + Load("common");
        string Build(string name)
        {
            // The script's body runs as a function, so that the writes it deferred (see `later` in
            // common.lua) are made after any of its returns.
            var script = prelude + "\nlocal function main()\n" + Load(name) + "\nend\nlocal result = main()\nflush_writes()\nreturn result\n";
            hashes[script] = SHA1.HashData(Encoding.UTF8.GetBytes(script));
            return script;
        }
        Submit = Build("submit");
        SubmitBatch = Build("submit_batch");
        Lease = Build("lease");
        Complete = Build("complete");
        CompleteBatch = Build("complete_batch");
        Fail = Build("fail");
        Progress = Build("progress");
        Cancel = Build("cancel");
        Delete = Build("delete");
        Get = Build("get");
        Events = Build("events");
        List = Build("list");
        Register = Build("register");
        Heartbeat = Build("heartbeat");
        TouchWorkers = Build("touch_workers");
        Requeue = Build("requeue");
        AttachJob = Build("attach_job");
        SweepDeadlines = Build("sweep_deadlines");
        SweepLeases = Build("sweep_leases");
        SweepScheduled = Build("sweep_scheduled");
        SweepRetention = Build("sweep_retention");
        SweepWorkers = Build("sweep_workers");
        Drain = Build("drain");
        Workers = Build("workers");
        PutArtifact = Build("put_artifact");
        GetArtifact = Build("get_artifact");
        Stats = Build("stats");
        Pause = Build("pause");
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

    private static string Load(string name)
    {
        using var stream = typeof(LuaScripts).Assembly.GetManifestResourceStream($"TaskManager.Scripts.{name}.lua")
            ?? throw new InvalidOperationException($"The Lua script '{name}' is not embedded in the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
