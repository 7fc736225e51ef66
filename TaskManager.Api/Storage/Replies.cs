using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>
/// The shapes of the scripts' replies, each declared once: an enum whose members are the reply's
/// fields in order. The Lua scripts build a reply with a function generated from the same list,
/// whose parameters are the fields (<c>REPLY.LEASED_TASK(id, token, ...)</c>: see
/// <see cref="LuaDefinitions"/>); the readers below take it apart by the fields' names. A field
/// the script leaves out arrives as an empty string.
/// </summary>
internal static class Replies
{
    /// <summary>A state change of one task (complete, fail, progress, cancel, delete, put_artifact).</summary>
    public enum Outcome { Code, Status, Type, Attempt, Started, Worker, Trace }

    /// <summary>lease_for's answer (lease.lua; submit.lua and complete_batch.lua when they lease).</summary>
    public enum Lease { Code, Types, Models, More, LeftForOthers, Tasks }

    /// <summary>One task of a <see cref="Lease"/>.</summary>
    public enum LeasedTask { Id, Token, Type, Model, Input, Metadata, Attempt, MaxAttempts, Timeout, Deadline, Trace, WaitMs }

    public enum Submit { Code, Queued, Task, Lease }

    public enum SubmitBatch { Queued, Created }

    public enum CompleteBatch { Outcomes, Lease }

    public enum Heartbeat { Code, Draining, Idle, Stop }

    /// <summary>One task a sweep moved.</summary>
    public enum Swept { Id, Status, Type, Trace }

    public enum TaskRead { Task, Attempts }

    public enum Page { More, Tasks, Cursor }

    public enum Events { Stored, Status, Attempt, RunningPending, Events }

    public enum Artifact { ContentType, Data }

    public enum Stats { Counts, Depths, Paused, Totals, Minutes, Wait, Run }

    /// <summary>A webhook delivery to make (take_webhooks.lua).</summary>
    public enum WebhookDue { TaskId, Event, Tenant, Target, Trace, LastJob }

    private static readonly Type[] Shapes =
    [
        typeof(Outcome), typeof(Lease), typeof(LeasedTask), typeof(Submit), typeof(SubmitBatch), typeof(CompleteBatch),
        typeof(Heartbeat), typeof(Swept), typeof(TaskRead), typeof(Page), typeof(Events), typeof(Artifact), typeof(Stats),
        typeof(WebhookDue),
    ];

    /// <summary>
    /// The shapes as Lua: <c>REPLY.LEASED_TASK(id, token, type, ...)</c> builds that reply from
    /// its fields, in the shape's order; its parameters are named after them. A field left out
    /// (nil, or false as HMGET reads a missing one) is an empty string.
    /// </summary>
    public static string LuaDefinitions()
    {
        var lua = new StringBuilder("local REPLY = {\n");
        foreach (var shape in Shapes)
        {
            var fields = Enum.GetNames(shape).Select(Lua.SnakeCase).ToArray();
            lua.Append("  ").Append(Lua.SnakeCase(shape.Name).ToUpperInvariant()).Append(" = function(").AppendJoin(", ", fields)
                .Append(") return {").AppendJoin(", ", fields.Select(f => $"{f} or ''")).Append("} end,\n");
        }
        return lua.Append("}\n").ToString();
    }

    public static StoreOutcome ReadOutcome(RedisResult result)
    {
        var r = Of<Outcome>(result);
        var status = r.String(Outcome.Status);
        return r.String(Outcome.Code) switch
        {
            "ok" => new StoreOutcome(StoreError.None, status, r.String(Outcome.Type), r.String(Outcome.Attempt) is { } attempt
                ? new EndedAttempt(int.Parse(attempt, CultureInfo.InvariantCulture), r.Time(Outcome.Started), r.String(Outcome.Worker), r.String(Outcome.Trace))
                : null),
            "not_found" => new StoreOutcome(StoreError.NotFound, null),
            "stale" => new StoreOutcome(StoreError.StaleLease, status),
            "conflict" or "too_large" => new StoreOutcome(StoreError.Conflict, status),
            var other => throw new InvalidOperationException($"Unexpected script reply '{other}'."),
        };
    }

    public static LeaseResult ReadLease(RedisResult result)
    {
        var r = Of<Lease>(result);
        if (r.String(Lease.Code) != "ok")
        {
            return LeaseResult.Unknown;
        }
        var left = Split(r.String(Lease.LeftForOthers)).Select(e => e.Split('|', 2)).Select(p => (p[0], p[1])).ToArray();
        var tasks = r.List(Lease.Tasks);
        var leased = new Domain.LeasedTask[tasks.Length];
        for (var i = 0; i < tasks.Length; i++)
        {
            var t = Of<LeasedTask>(tasks[i]);
            leased[i] = new Domain.LeasedTask(
                TaskId: t.String(LeasedTask.Id)!,
                LeaseToken: t.String(LeasedTask.Token)!,
                Type: t.String(LeasedTask.Type)!,
                Model: t.String(LeasedTask.Model),
                InputJson: t.String(LeasedTask.Input)!,
                MetadataJson: t.String(LeasedTask.Metadata),
                Attempt: (int)t.Long(LeasedTask.Attempt),
                MaxAttempts: (int)t.Long(LeasedTask.MaxAttempts),
                TimeoutSeconds: (int)t.Long(LeasedTask.Timeout),
                DeadlineAt: DateTimeOffset.FromUnixTimeMilliseconds(t.Long(LeasedTask.Deadline)),
                TraceParent: t.String(LeasedTask.Trace),
                WaitMs: t.Long(LeasedTask.WaitMs));
        }
        return new LeaseResult(false, Split(r.String(Lease.Types)), Split(r.String(Lease.Models)), r.Long(Lease.More) == 1, left, leased);
    }

    /// <summary>The lease in a reply that may carry one (an empty field: none was made).</summary>
    public static LeaseResult? ReadOptionalLease(RedisResult result) =>
        result.Resp2Type == ResultType.Array ? ReadLease(result) : null;

    public static HeartbeatResult? ReadHeartbeat(RedisResult result)
    {
        var r = Of<Heartbeat>(result);
        return r.String(Heartbeat.Code) != "ok"
            ? null
            : new HeartbeatResult(r.List(Heartbeat.Stop).Select(s => (string)s!).ToArray(), r.String(Heartbeat.Draining) == "1",
                r.String(Heartbeat.Idle) == "1");
    }

    public static IReadOnlyList<SweptTask> ReadSwept(RedisResult result) => ((RedisResult[])result!).Select(item =>
    {
        var r = Of<Swept>(item);
        return new SweptTask(r.String(Swept.Id)!, r.String(Swept.Status)!, r.String(Swept.Type)!, r.String(Swept.Trace));
    }).ToArray();

    public static Domain.WebhookDue ReadWebhookDue(RedisResult item)
    {
        var r = Of<WebhookDue>(item);
        return new Domain.WebhookDue(r.String(WebhookDue.TaskId)!, r.String(WebhookDue.Event)!, r.String(WebhookDue.Tenant)!,
            r.String(WebhookDue.Target)!, r.String(WebhookDue.Trace), r.String(WebhookDue.LastJob));
    }

    public static Reply<T> Of<T>(RedisResult result) where T : struct, Enum => new((RedisResult[])result!);

    public static string[] Split(string? list) => string.IsNullOrEmpty(list) ? [] : list.Split(',');
}

/// <summary>A script's reply read by the names of its shape (<see cref="Replies"/>).</summary>
internal readonly struct Reply<T>(RedisResult[] values) where T : struct, Enum
{
    public RedisResult this[T field] => values[Unsafe.As<T, int>(ref field)];

    /// <summary>The field as text; null when the script left it out (an empty string).</summary>
    public string? String(T field) => this[field] is { IsNull: false } v && (string?)v is { Length: > 0 } s ? s : null;

    public long Long(T field) => (long)this[field];

    public RedisResult[] List(T field) => this[field].Resp2Type == ResultType.Array ? (RedisResult[])this[field]! : [];

    public DateTimeOffset? Time(T field) =>
        String(field) is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(ms, CultureInfo.InvariantCulture)) : null;
}
