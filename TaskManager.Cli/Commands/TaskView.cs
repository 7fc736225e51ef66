using System.Text.Json;
using Spectre.Console;

namespace TaskManager.Cli.Commands;

/// <summary>How one task is shown, and waiting for one to end.</summary>
public static class TaskView
{
    /// <summary>Prints a task: its JSON with <c>--json</c>, else its fields, error and output.</summary>
    public static void Print(CommandContext context, string json)
    {
        if (context.Json)
        {
            Output.Json(json);
            return;
        }
        var task = ApiClient.Parse(json);
        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        void Row(string name, string? markup)
        {
            if (!string.IsNullOrEmpty(markup))
            {
                grid.AddRow(new Markup($"[grey]{name}[/]"), new Markup(markup));
            }
        }
        string? Plain(string property) => Output.Text(task, property) is { } v ? Markup.Escape(v) : null;
        Row("id", $"[bold]{Plain("id")}[/]");
        Row("type", Plain("type"));
        Row("status", Output.StatusMarkup(Output.Text(task, "status")));
        Row("model", Plain("model"));
        Row("priority", Plain("priority"));
        Row("attempt", $"{Plain("attempt")} of {Plain("max_attempts")}");
        if (task.TryGetProperty("progress", out var progress) && progress.ValueKind == JsonValueKind.Number)
        {
            Row("progress", $"{Output.Bar(progress.GetDouble())} {Output.Percent(progress.GetDouble())} {Plain("progress_message")}");
        }
        Row("queue position", Plain("queue_position"));
        Row("waiting", Plain("waiting_reason"));
        Row("worker", Plain("worker_id"));
        Row("created", Output.Time(Output.Text(task, "created_at")));
        Row("started", Output.Time(Output.Text(task, "started_at")));
        Row("completed", Output.Time(Output.Text(task, "completed_at")));
        if (task.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
        {
            Row("error", $"[red]{Markup.Escape(Output.Text(error, "code") ?? "")}[/]: {Markup.Escape(Output.Text(error, "message") ?? "")}");
        }
        Output.Out.Write(grid);
        if (task.TryGetProperty("output", out var output) && output.ValueKind == JsonValueKind.Object)
        {
            Output.Out.WriteLine();
            if (output.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
            {
                Output.Out.WriteLine(text.GetString()!);
            }
            else
            {
                Output.Out.WriteLine(JsonSerializer.Serialize(output, new JsonSerializerOptions { WriteIndented = true }));
            }
        }
    }

    /// <summary>The exit code a task's final status gives: 0 succeeded, 1 anything else.</summary>
    public static int ExitCodeOf(string json) =>
        Output.Text(ApiClient.Parse(json), "status") == "succeeded" ? ExitCodes.Done : ExitCodes.TaskFailed;

    /// <summary>Waits until the task is final (long polls of <c>Prefer: wait=60</c>), prints it, and exits by its status.</summary>
    public static async Task<int> WaitAsync(CommandContext context, string id, CancellationToken cancel)
    {
        var json = await WaitForEndAsync(context.Api, id, cancel);
        Print(context, json);
        return ExitCodeOf(json);
    }

    public static async Task<string> WaitForEndAsync(ApiClient api, string id, CancellationToken cancel)
    {
        while (true)
        {
            var json = await api.SendAsync(HttpMethod.Get, $"api/tasks/{ApiClient.Escape(id)}", preferWait: 60, cancel: cancel);
            if (TaskStatuses.IsFinal(Output.Text(ApiClient.Parse(json), "status")))
            {
                return json;
            }
        }
    }
}
