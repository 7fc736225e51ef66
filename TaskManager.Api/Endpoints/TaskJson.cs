using System.Text.Json;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// The JSON of the API (snake_case, UTC times, no duplicate properties), in one place: the HTTP
/// answers use it, and so do the webhook bodies the scheduler sends, which carry a task as
/// <c>GET /api/tasks/{id}</c> shows it.
/// </summary>
public static class TaskJson
{
    public static readonly JsonSerializerOptions Options = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    public static JsonSerializerOptions Configure(JsonSerializerOptions json)
    {
        json.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        json.DictionaryKeyPolicy = null;
        json.AllowDuplicateProperties = false;
        json.Converters.Add(new UtcTimeConverter());
        return json;
    }

    /// <summary>
    /// A webhook's body: <c>{"type": "task.&lt;event&gt;", "timestamp": ..., "data": &lt;the task&gt;}</c>,
    /// the task's links made from <paramref name="links"/>.
    /// </summary>
    public static string WebhookBody(string @event, TaskRecord task, TaskLinks links, DateTimeOffset now) =>
        JsonSerializer.Serialize(new WebhookBodyDto("task." + @event, now, TaskDto.From(task, links)), Options);

    private sealed record WebhookBodyDto(string Type, DateTimeOffset Timestamp, TaskDto Data);
}
