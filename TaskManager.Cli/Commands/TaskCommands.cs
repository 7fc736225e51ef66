using System.CommandLine;
using System.Text.Json;
using Spectre.Console;

namespace TaskManager.Cli.Commands;

/// <summary>One task at a time: <c>get</c>, <c>events</c>, <c>cancel</c>, <c>retry</c>, <c>rm</c>, <c>artifact</c>; and <c>ls</c> (ListCommand).</summary>
public static class TaskCommands
{
    private static Argument<string> Id() => new("ID") { Description = "The task's id" };

    private static string TaskPath(string id, string? rest = null) => $"api/tasks/{ApiClient.Escape(id)}{rest}";

    public static IEnumerable<Command> Build()
    {
        var id = Id();
        var wait = new Option<bool>("--wait") { Description = "Wait until the task is final; exit 0 only if it succeeded" };
        var get = new Command("get", "Show a task") { id, wait };
        get.WithAction(async (context, cancel) =>
        {
            if (context.Value(wait))
            {
                return await TaskView.WaitAsync(context, context.Value(id)!, cancel);
            }
            TaskView.Print(context, await context.Api.SendAsync(HttpMethod.Get, TaskPath(context.Value(id)!), cancel: cancel));
            return ExitCodes.Done;
        });
        yield return get;

        yield return ListCommand.Build();
        yield return Events();
        yield return Change("cancel", "Cancel a task (queued: at once; running: once its worker stops it)", HttpMethod.Patch, "/cancel");
        yield return Change("retry", "Run an ended task (failed, timed out, canceled, expired) again", HttpMethod.Post, "/retry");

        var rmId = Id();
        var rm = new Command("rm", "Delete a task in a final state") { rmId };
        rm.WithAction(async (context, cancel) =>
        {
            var taskId = context.Value(rmId)!;
            await context.Api.SendAsync(HttpMethod.Delete, TaskPath(taskId), cancel: cancel);
            // The API answers 204 without a body; --json still prints a document a script can read.
            if (context.Json)
            {
                Output.Json(JsonSerializer.Serialize(new Dictionary<string, object> { ["id"] = taskId, ["deleted"] = true }));
            }
            else
            {
                Output.Out.MarkupLineInterpolated($"[bold]{taskId}[/] deleted");
            }
            return ExitCodes.Done;
        });
        yield return rm;
        yield return Artifact();
    }

    private static Command Change(string name, string description, HttpMethod method, string suffix)
    {
        var id = Id();
        var command = new Command(name, description) { id };
        command.WithAction(async (context, cancel) =>
        {
            TaskView.Print(context, await context.Api.SendAsync(method, TaskPath(context.Value(id)!, suffix), cancel: cancel));
            return ExitCodes.Done;
        });
        return command;
    }

    private static Command Events()
    {
        var id = Id();
        var after = new Option<string?>("--after") { Description = "Start after this event id (as Last-Event-ID)" };
        var events = new Command("events", "Follow a task's events (status, progress, chunk, log) until its final status; resumes a dropped connection")
        {
            id, after,
        };
        events.WithAction(async (context, cancel) =>
        {
            var taskId = context.Value(id)!;
            string? status = null;
            var stream = new EventStream(context.Api, taskId, Console.Error);
            await foreach (var e in stream.ReadAsync(context.Value(after), cancel))
            {
                if (e.IsFinalStatus)
                {
                    status = e.Text("status");
                }
                if (context.Json)
                {
                    Output.Json(e.ToJsonLine());
                    continue;
                }
                var what = e.Kind switch
                {
                    "status" => Output.StatusMarkup(e.Text("status")),
                    "progress" => Markup.Escape($"{Output.Bar(e.Data.GetProperty("progress").GetDouble())} {Output.Percent(e.Data.GetProperty("progress").GetDouble())} {e.Text("message")}"),
                    "chunk" => Markup.Escape(JsonSerializer.Serialize(e.Text("text"))),
                    "log" => Markup.Escape(e.Text("line") ?? ""),
                    _ => Markup.Escape(e.DataText),
                };
                Output.Out.MarkupLine($"[grey]{e.Id,5}[/] {e.Kind,-8} [grey]a{e.Attempt}[/] {what}");
            }
            if (status is null && stream.EndedBefore)
            {
                // --after the final event: nothing more came; the task says how it ended.
                status = Output.Text(await context.Api.GetJsonAsync(TaskPath(taskId), cancel), "status");
            }
            return status == "succeeded" ? ExitCodes.Done : ExitCodes.TaskFailed;
        });
        return events;
    }

    private static Command Artifact()
    {
        var id = Id();
        var name = new Argument<string>("NAME") { Description = "The artifact's name, e.g. image-0.png (the task's output lists them)" };
        var file = new Option<string?>("--output", "-o") { Description = "The file to write (default: NAME in the current folder; - for stdout)" };
        var artifact = new Command("artifact", "Download a task's binary output (an image, audio)") { id, name, file };
        artifact.WithAction(async (context, cancel) =>
        {
            var artifactName = context.Value(name)!;
            var target = context.Value(file) ?? artifactName;
            using var response = await context.Api.SendRawAsync(HttpMethod.Get, TaskPath(context.Value(id)!, $"/artifacts/{ApiClient.Escape(artifactName)}"),
                cancel: cancel, completion: HttpCompletionOption.ResponseHeadersRead);
            long bytes;
            if (target == "-")
            {
                await using var stdout = Console.OpenStandardOutput();
                await response.Content.CopyToAsync(stdout, cancel);
                return ExitCodes.Done;
            }
            await using (var stream = File.Create(target))
            {
                await response.Content.CopyToAsync(stream, cancel);
                bytes = stream.Length;
            }
            var type = response.Content.Headers.ContentType?.MediaType;
            if (context.Json)
            {
                Output.Json(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["file"] = Path.GetFullPath(target),
                    ["bytes"] = bytes,
                    ["content_type"] = type,
                }));
            }
            else
            {
                Output.Out.MarkupLineInterpolated($"{target}: {bytes} bytes ({type})");
            }
            return ExitCodes.Done;
        });
        return artifact;
    }
}
