using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>
/// The values of one new task in a submission's script arguments, in this order. The scripts
/// read them by name from where the task starts (<c>ARGV[at + TASK_VALUE.input]</c>), and a
/// batch is <c>TASK_VALUES</c> values a task (both generated from here).
/// </summary>
internal static class TaskValues
{
    public enum Field { Id, Type, Priority, Input, Timeout, MaxAttempts, Model, Metadata, Webhook, WebhookEvents, StartDeadline, Trace, ReqMem, ReqGpu }

    public static readonly int Count = Enum.GetValues<Field>().Length;

    /// <summary>Appends one task's values; an absent optional one is an empty string.</summary>
    public static void Add(List<RedisValue> values, string id, TaskRequest request, string? traceParent)
    {
        var at = values.Count;
        CollectionsMarshal.SetCount(values, at + Count);
        var task = CollectionsMarshal.AsSpan(values)[at..];
        task[(int)Field.Id] = id;
        task[(int)Field.Type] = request.Type;
        task[(int)Field.Priority] = request.Priority;
        task[(int)Field.Input] = request.InputJson;
        task[(int)Field.Timeout] = request.TimeoutSeconds;
        task[(int)Field.MaxAttempts] = request.MaxAttempts;
        task[(int)Field.Model] = request.Model ?? "";
        task[(int)Field.Metadata] = request.MetadataJson ?? "";
        task[(int)Field.Webhook] = request.Webhook ?? "";
        task[(int)Field.WebhookEvents] = request.WebhookEvents is { } events ? string.Join(',', events) : "";
        task[(int)Field.StartDeadline] = request.StartDeadlineSeconds?.ToString(CultureInfo.InvariantCulture) ?? "";
        task[(int)Field.Trace] = traceParent ?? "";
        task[(int)Field.ReqMem] = request.Requirements?.GpuMemoryMb?.ToString(CultureInfo.InvariantCulture) ?? "";
        task[(int)Field.ReqGpu] = request.Requirements?.Gpu ?? "";
    }

    /// <summary><c>TASK_VALUE.{name}</c>: a value's offset from a task's first; <c>TASK_VALUES</c>: how many.</summary>
    public static string LuaDefinitions() => new StringBuilder("local TASK_VALUE = {")
        .AppendJoin(", ", Enum.GetValues<Field>().Select(f => $"{Lua.SnakeCase(f.ToString())} = {(int)f}"))
        .Append("}\nlocal TASK_VALUES = ").Append(Count).Append('\n')
        .ToString();
}
