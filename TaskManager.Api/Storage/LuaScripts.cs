using System.Text;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>
/// The Lua scripts, one per state change, each assembled from the key definitions
/// (<see cref="RedisKeys.LuaDefinitions"/>), the state machine (<see cref="TaskState.Transitions"/>),
/// <c>common.lua</c> and its own file. StackExchange.Redis sends a script's text once and EVALSHA after.
/// </summary>
public sealed class LuaScripts
{
    public LuaScripts(RedisKeys keys)
    {
        var prelude = keys.LuaDefinitions() + TransitionsTable() + TaskTypesTable() + BucketsTable() + Load("common");
        string Build(string name) => prelude + "\n" + Load(name);
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
        List = Build("list");
        Register = Build("register");
        Heartbeat = Build("heartbeat");
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
    public string List { get; }
    public string Register { get; }
    public string Heartbeat { get; }
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
