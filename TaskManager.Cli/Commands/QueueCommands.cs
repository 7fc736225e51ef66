using System.CommandLine;
using System.Text.Json;
using Spectre.Console;

namespace TaskManager.Cli.Commands;

/// <summary><c>tm queues</c>, <c>tm pause</c> and <c>tm resume</c> (admin), and <c>tm stats</c>: all from <c>/api/tasks/stats/metrics</c> and the admin queue calls.</summary>
public static class QueueCommands
{
    private const string Metrics = "api/tasks/stats/metrics";

    public static IEnumerable<Command> Build()
    {
        var queues = new Command("queues", "Each task type's queue: depth and whether it is paused");
        queues.WithAction(async (context, cancel) =>
        {
            var metrics = await context.Api.GetJsonAsync(Metrics, cancel);
            var all = metrics.GetProperty("queues");
            if (context.Json)
            {
                Output.Json(all); // the "queues" member of the metrics answer
                return ExitCodes.Done;
            }
            var deepest = Math.Max(1, all.EnumerateObject().Max(q => q.Value.GetProperty("depth").GetInt64()));
            var table = Output.Table("TYPE", "DEPTH", "", "STATE");
            table.Columns[1].RightAligned();
            foreach (var queue in all.EnumerateObject())
            {
                var depth = queue.Value.GetProperty("depth").GetInt64();
                table.AddRow(Markup.Escape(queue.Name), depth.ToString(System.Globalization.CultureInfo.InvariantCulture), Output.Bar(depth / (double)deepest, 20),
                    queue.Value.GetProperty("paused").GetBoolean() ? "[yellow]paused[/]" : "[green]running[/]");
            }
            Output.Out.Write(table);
            return ExitCodes.Done;
        });
        yield return queues;
        yield return Pause("pause", "Pause a type's queue: tasks are accepted and wait, workers get none (admin key)");
        yield return Pause("resume", "Resume a paused queue (admin key)");
        yield return StatsCommand.Build(Metrics);
    }

    private static Command Pause(string name, string description)
    {
        var type = new Argument<string>("TYPE") { Description = "llm, sd, tts or image_to_text" };
        var command = new Command(name, description) { type };
        command.WithAction(async (context, cancel) =>
        {
            var json = await context.Api.SendAsync(HttpMethod.Post, $"api/admin/queues/{ApiClient.Escape(context.Value(type)!)}/{name}", cancel: cancel);
            if (context.Json)
            {
                Output.Json(json);
                return ExitCodes.Done;
            }
            var state = ApiClient.Parse(json);
            var paused = state.GetProperty("paused").GetBoolean() ? "paused" : "running";
            var changed = state.GetProperty("changed").GetBoolean() ? "" : " (it already was)";
            Output.Out.MarkupLineInterpolated($"queue [bold]{Output.Text(state, "type")}[/] {paused}{changed}");
            return ExitCodes.Done;
        });
        return command;
    }
}
