using System.CommandLine;
using System.Text.Json;
using Spectre.Console;

namespace TaskManager.Cli.Commands;

/// <summary><c>tm workers</c> (the fleet, with GPU memory bars) and <c>tm drain</c> (admin).</summary>
public static class FleetCommands
{
    public static IEnumerable<Command> Build()
    {
        var workers = new Command("workers", "The workers: status, task types, load, counts and each GPU's memory");
        workers.WithAction(async (context, cancel) =>
        {
            var json = await context.Api.SendAsync(HttpMethod.Get, "api/tasks/workers/stats", cancel: cancel);
            if (context.Json)
            {
                Output.Json(json);
                return ExitCodes.Done;
            }
            // Workers by name (drain takes names; --json gives the ids), so that the table fits 100 columns.
            var table = Output.Table("WORKER", "STATUS", "TYPES", "MODELS", "RUN", "DONE", "FAIL", "GPU MEMORY USED");
            foreach (var worker in ApiClient.Parse(json).GetProperty("workers").EnumerateArray())
            {
                table.AddRow(
                    new Markup(Markup.Escape(Output.Text(worker, "name") ?? "")),
                    new Markup(WorkerStatus(Output.Text(worker, "status"))),
                    new Markup(Markup.Escape(string.Join(" ", worker.GetProperty("task_types").EnumerateArray().Select(t => t.GetString())))),
                    new Markup(Markup.Escape(string.Join(" ", worker.GetProperty("models").EnumerateArray().Select(m => m.ToString())))),
                    new Markup($"{Output.Text(worker, "running")}/{Output.Text(worker, "capacity")}"),
                    new Markup(Output.Text(worker, "completed") ?? ""),
                    new Markup(Output.Text(worker, "failed") ?? ""),
                    GpuBars(worker.GetProperty("gpus")));
            }
            Output.Out.Write(table);
            return ExitCodes.Done;
        });
        yield return workers;

        var worker = new Argument<string>("WORKER") { Description = "The worker's id or name" };
        var drain = new Command("drain", "Drain a worker: it takes no new tasks and finishes those it runs (admin key)") { worker };
        drain.WithAction(async (context, cancel) =>
        {
            var id = await WorkerIdAsync(context.Api, context.Value(worker)!, cancel);
            var json = await context.Api.SendAsync(HttpMethod.Post, $"api/admin/workers/{ApiClient.Escape(id)}/drain", cancel: cancel);
            if (context.Json)
            {
                Output.Json(json);
            }
            else
            {
                var drained = ApiClient.Parse(json);
                Output.Out.MarkupLine($"[bold]{Markup.Escape(Output.Text(drained, "name") ?? id)}[/] ({Markup.Escape(id)}) {WorkerStatus(Output.Text(drained, "status"))}");
            }
            return ExitCodes.Done;
        });
        yield return drain;
    }

    /// <summary>A worker named by its name is found by it; anything else is taken as an id (an unknown one: the API's 404).</summary>
    private static async Task<string> WorkerIdAsync(ApiClient api, string idOrName, CancellationToken cancel)
    {
        var health = await api.GetJsonAsync("api/tasks/workers/health", cancel);
        var workers = health.GetProperty("workers").EnumerateArray().ToArray();
        if (workers.Any(w => Output.Text(w, "id") == idOrName))
        {
            return idOrName;
        }
        var named = workers.Where(w => Output.Text(w, "name") == idOrName && Output.Text(w, "status") != "dead").ToArray();
        return named.Length switch
        {
            1 => Output.Text(named[0], "id")!,
            0 => idOrName,
            _ => throw new UsageException($"{named.Length} live workers are named '{idOrName}'; give the id of one ({string.Join(", ", named.Select(w => Output.Text(w, "id")))})."),
        };
    }

    private static string WorkerStatus(string? status) => status switch
    {
        "healthy" => "[green]healthy[/]",
        "draining" => "[yellow]draining[/]",
        "stale" or "dead" => $"[red]{status}[/]",
        _ => Markup.Escape(status ?? ""),
    };

    /// <summary>Each GPU on a line: its name and a bar of its used memory (total less free), as the worker last reported it.</summary>
    private static Markup GpuBars(JsonElement gpus)
    {
        var lines = new List<string>();
        foreach (var gpu in gpus.ValueKind == JsonValueKind.Array ? gpus.EnumerateArray() : Enumerable.Empty<JsonElement>())
        {
            var total = Number(gpu, "memory_total_mb");
            var free = Number(gpu, "memory_free_mb");
            // "NVIDIA H100 80GB HBM3" as "H100 80GB HBM3": the vendor's name costs a column its width.
            var name = Markup.Escape((Output.Text(gpu, "name") ?? "GPU").Replace("NVIDIA ", "", StringComparison.Ordinal));
            if (total is > 0 && free is not null)
            {
                var used = total.Value - free.Value;
                var fraction = used / total.Value;
                var colour = fraction > 0.9 ? "red" : fraction > 0.6 ? "yellow" : "green";
                lines.Add($"{name} [{colour}]{Output.Bar(fraction, 10)}[/] {used / 1024:0.0}/{total.Value / 1024:0.0} GiB");
            }
            else
            {
                lines.Add(name);
            }
        }
        return new Markup(lines.Count == 0 ? "[grey]no GPU[/]" : string.Join('\n', lines));
    }

    private static double? Number(JsonElement element, string property) =>
        element.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
}
