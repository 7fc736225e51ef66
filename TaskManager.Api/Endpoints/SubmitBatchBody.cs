using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// The body of <c>POST /api/tasks/batch</c>: <c>{"tasks": [request, ...]}</c> with 1 to
/// <see cref="MaxTasks"/> task requests. A body that is not such an envelope is refused whole
/// (400); inside a good envelope each request is validated on its own, and a bad one is refused
/// alone, with its ProblemDetails in the answer at its place.
/// </summary>
public sealed class SubmitBatchBody : IValidatable
{
    public const int MaxTasks = 1000;

    private readonly Dictionary<string, string[]> errors;

    private SubmitBatchBody(IReadOnlyList<BatchEntry> entries, Dictionary<string, string[]> errors)
    {
        Entries = entries;
        this.errors = errors;
    }

    /// <summary>One entry per task request, in order: a valid request, or why it was refused.</summary>
    public IReadOnlyList<BatchEntry> Entries { get; }

    public IDictionary<string, string[]> Validate() => errors;

    public static async ValueTask<SubmitBatchBody?> BindAsync(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<IOptions<TaskManagerOptions>>().Value;
        return await SubmitTaskBody.ReadJsonAsync(context, options.MaxBatchRequestBytes,
            root => Read(root, options.MaxTaskRequestBytes), message => Invalid("$", message));
    }

    private static SubmitBatchBody Read(JsonElement root, long maxTaskBytes)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return Invalid("$", "The body must be a JSON object with a 'tasks' array.");
        }
        JsonElement? tasks = null;
        foreach (var property in root.EnumerateObject())
        {
            if (property.NameEquals("tasks"))
            {
                tasks = property.Value;
            }
            else
            {
                return Invalid(property.Name, "is not a field of a batch; the body is {\"tasks\": [...]}.");
            }
        }
        if (tasks is not { ValueKind: JsonValueKind.Array } array)
        {
            return Invalid("tasks", "is required: an array of 1 to 1000 task requests.");
        }
        var count = array.GetArrayLength();
        if (count is 0 or > MaxTasks)
        {
            return Invalid("tasks", $"must hold 1 to {MaxTasks} task requests; it has {count}.");
        }

        var entries = new List<BatchEntry>(count);
        foreach (var element in array.EnumerateArray())
        {
            entries.Add(ReadOne(element, maxTaskBytes));
        }
        return new SubmitBatchBody(entries, []);
    }

    private static BatchEntry ReadOne(JsonElement element, long maxTaskBytes)
    {
        // The raw UTF-8 as the client sent it: the size the single endpoint would have seen.
        if (JsonMarshal.GetRawUtf8Value(element).Length > maxTaskBytes)
        {
            return new BatchEntry(null, null, $"This task request is larger than {maxTaskBytes} bytes.");
        }
        try
        {
            var problems = TaskRequestValidator.Validate(element, out var request);
            return problems.Count > 0 ? new BatchEntry(null, problems, null) : new BatchEntry(request, null, null);
        }
        catch (InvalidOperationException)
        {
            return new BatchEntry(null, new Dictionary<string, string[]> { ["$"] = [SubmitTaskBody.InvalidUtf8] }, null);
        }
    }

    private static SubmitBatchBody Invalid(string field, string message) =>
        new([], new Dictionary<string, string[]> { [field] = [message] });
}

/// <summary>One task request of a batch: <see cref="Request"/> when valid, else its field
/// problems (400) or why it is too large (413).</summary>
public sealed record BatchEntry(TaskRequest? Request, Dictionary<string, string[]>? Problems, string? TooLarge);
