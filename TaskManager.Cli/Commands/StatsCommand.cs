using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;

namespace TaskManager.Cli.Commands;

/// <summary><c>tm stats</c>: throughput, success rate, tasks by status, wait and run time percentiles per type, as tables and bar charts.</summary>
public static class StatsCommand
{
    public static Command Build(string metricsPath)
    {
        var stats = new Command("stats", "Throughput, success rate, tasks by status and wait/run time percentiles per type (the caller's tenant; an admin's: all)");
        stats.WithAction(async (context, cancel) =>
        {
            var json = await context.Api.SendAsync(HttpMethod.Get, metricsPath, cancel: cancel);
            if (context.Json)
            {
                Output.Json(json);
                return ExitCodes.Done;
            }
            Render(ApiClient.Parse(json));
            return ExitCodes.Done;
        });
        return stats;
    }

    private static void Render(JsonElement m)
    {
        var console = Output.Out;
        var perMinute = m.GetProperty("finished_per_minute");
        var success = m.GetProperty("success_rate");
        console.Write(new BarChart().Label("[bold]finished per minute[/]").Width(60)
            .AddItem("last minute", perMinute.GetProperty("last_minute").GetDouble(), Color.Green)
            .AddItem("last 5 minutes", perMinute.GetProperty("last5_minutes").GetDouble(), Color.Green)
            .AddItem("last 15 minutes", perMinute.GetProperty("last15_minutes").GetDouble(), Color.Green));
        console.MarkupLine($"success rate: [bold]{(success.ValueKind == JsonValueKind.Number ? success.GetDouble().ToString("P1", CultureInfo.InvariantCulture) : "-")}[/]");
        console.WriteLine();

        var byStatus = new BarChart().Label("[bold]tasks by status[/]").Width(60);
        foreach (var status in m.GetProperty("by_status").EnumerateObject())
        {
            byStatus.AddItem(status.Name, status.Value.GetInt64(), ColourOf(status.Name));
        }
        console.Write(byStatus);
        console.WriteLine();

        console.MarkupLine("[bold]wait and run time (ms)[/]");
        var table = Output.Table("TYPE", "RUNS", "WAIT p50", "p95", "p99", "RUN p50", "p95", "p99");
        foreach (var column in table.Columns.Skip(1))
        {
            column.RightAligned();
        }
        var wait = m.GetProperty("wait_ms");
        var run = m.GetProperty("run_ms");
        var p95 = new BarChart().Label("[bold]run time p95 (ms)[/]").Width(60);
        foreach (var type in run.EnumerateObject())
        {
            var w = wait.GetProperty(type.Name);
            var r = type.Value;
            table.AddRow(type.Name, Cell(r, "count"), Cell(w, "p50"), Cell(w, "p95"), Cell(w, "p99"), Cell(r, "p50"), Cell(r, "p95"), Cell(r, "p99"));
            if (r.GetProperty("p95").ValueKind == JsonValueKind.Number)
            {
                p95.AddItem(type.Name, r.GetProperty("p95").GetDouble(), Color.Blue);
            }
        }
        console.Write(table);
        if (p95.Data.Count > 0)
        {
            console.Write(p95);
        }
    }

    private static string Cell(JsonElement element, string property) => Output.Text(element, property) ?? "-";

    private static Color ColourOf(string status) => status switch
    {
        "succeeded" => Color.Green,
        "failed" or "timed_out" or "expired" => Color.Red,
        "canceled" or "canceling" => Color.Yellow,
        "running" => Color.Blue,
        _ => Color.Grey,
    };
}
