using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace TaskManager.Cli.Commands;

/// <summary><c>tm ls</c>: tasks newest first, filtered; <c>--watch</c> keeps the table live until Ctrl+C.</summary>
public static class ListCommand
{
    /// <summary>The most the API gives in one page; a larger <c>--limit</c> reads several.</summary>
    private const int PageSize = 100;

    public static Command Build()
    {
        var status = new Option<string?>("--status") { Description = "Only these statuses, comma-separated (queued,running,...)" };
        var type = new Option<string?>("--type") { Description = "Only these types, comma-separated (llm,sd,tts,image_to_text)" };
        var limit = new Option<int>("--limit") { Description = "How many tasks, newest first", DefaultValueFactory = _ => 20 };
        var tenant = new Option<string?>("--tenant") { Description = "Admin keys: one tenant's tasks only" };
        var model = new Option<string?>("--model") { Description = "Only the tasks that name this model" };
        var watch = new Option<bool>("--watch") { Description = "Redraw the table every --interval seconds until Ctrl+C" };
        var interval = new Option<double>("--interval") { Description = "Seconds between redraws with --watch", DefaultValueFactory = _ => 2 };
        var ls = new Command("ls", "List tasks, newest first") { status, type, model, limit, tenant, watch, interval };
        ls.WithAction(async (context, cancel) =>
        {
            if (context.Value(limit) < 1)
            {
                throw new UsageException("--limit must be 1 or more.");
            }
            var query = new Query(context.Value(status), context.Value(type), context.Value(limit), context.Value(tenant), context.Value(model));
            if (!context.Value(watch))
            {
                var page = await ReadAsync(context.Api, query, cancel);
                if (context.Json)
                {
                    Output.Json(page.ToJsonString());
                }
                else
                {
                    Output.Out.Write(Table(page));
                }
                return ExitCodes.Done;
            }
            if (context.Value(interval) <= 0)
            {
                throw new UsageException("--interval must be more than 0 seconds.");
            }
            return await WatchAsync(context, query, TimeSpan.FromSeconds(context.Value(interval)), cancel);
        });
        return ls;
    }

    private sealed record Query(string? Status, string? Type, int Limit, string? Tenant, string? Model);

    /// <summary>Reads up to the limit, page after page: <c>{"items": [...], "next_cursor": ...}</c> as the API writes it.</summary>
    private static async Task<JsonObject> ReadAsync(ApiClient api, Query query, CancellationToken cancel)
    {
        var items = new JsonArray();
        string? cursor = null;
        do
        {
            var path = $"api/tasks?limit={Math.Min(PageSize, query.Limit - items.Count)}"
                + (query.Status is { Length: > 0 } s ? $"&status={Uri.EscapeDataString(s)}" : "")
                + (query.Type is { Length: > 0 } t ? $"&type={Uri.EscapeDataString(t)}" : "")
                + (query.Tenant is { Length: > 0 } n ? $"&tenant={Uri.EscapeDataString(n)}" : "")
                + (query.Model is { Length: > 0 } m ? $"&model={Uri.EscapeDataString(m)}" : "")
                + (cursor is null ? "" : $"&cursor={Uri.EscapeDataString(cursor)}");
            var page = JsonNode.Parse(await api.SendAsync(HttpMethod.Get, path, cancel: cancel))!.AsObject();
            foreach (var item in page["items"]!.AsArray().ToArray())
            {
                items.Add(item!.DeepClone());
            }
            cursor = page["next_cursor"]?.GetValue<string>();
        }
        while (cursor is not null && items.Count < query.Limit);
        return new JsonObject { ["items"] = items, ["next_cursor"] = cursor };
    }

    private static IRenderable Table(JsonObject page)
    {
        // The worker is left to tm get: with it the table no longer fits 100 columns.
        var table = Output.Table("ID", "TYPE", "STATUS", "PRI", "TRY", "PROGRESS", "CREATED");
        foreach (var node in page["items"]!.AsArray())
        {
            var task = JsonSerializer.SerializeToElement(node);
            var progress = task.TryGetProperty("progress", out var p) && p.ValueKind == JsonValueKind.Number
                ? $"{Output.Bar(p.GetDouble(), 5)} {Output.Percent(p.GetDouble())}" : "";
            table.AddRow(
                Markup.Escape(Output.Text(task, "id") ?? ""),
                Markup.Escape(Output.Text(task, "type") ?? ""),
                Output.StatusMarkup(Output.Text(task, "status")),
                Output.Text(task, "priority") ?? "",
                $"{Output.Text(task, "attempt")}/{Output.Text(task, "max_attempts")}",
                progress,
                Output.Time(Output.Text(task, "created_at"), compact: true));
        }
        if (page["next_cursor"] is not null)
        {
            table.Caption("more: raise --limit");
        }
        return table;
    }

    private static async Task<int> WatchAsync(CommandContext context, Query query, TimeSpan interval, CancellationToken cancel)
    {
        // Ctrl+C is how a watch ends: it ends it cleanly, with exit 0.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        ConsoleCancelEventHandler onInterrupt = (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        Console.CancelKeyPress += onInterrupt;
        try
        {
            if (!context.Json && !Console.IsOutputRedirected)
            {
                var first = Table(await ReadAsync(context.Api, query, stop.Token));
                await Output.Out.Live(first).StartAsync(async live =>
                {
                    while (await Pause(interval, stop.Token))
                    {
                        live.UpdateTarget(Table(await ReadAsync(context.Api, query, stop.Token)));
                    }
                });
                return ExitCodes.Done;
            }
            // Not a terminal: each refresh printed whole (a JSON line each with --json), so that a log shows the changes.
            do
            {
                var page = await ReadAsync(context.Api, query, stop.Token);
                if (context.Json)
                {
                    Output.Json(page.ToJsonString());
                }
                else
                {
                    Output.Out.WriteLine($"-- {DateTime.Now:HH:mm:ss} --");
                    Output.Out.Write(Table(page));
                }
            }
            while (await Pause(interval, stop.Token));
            return ExitCodes.Done;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return ExitCodes.Done;
        }
        finally
        {
            Console.CancelKeyPress -= onInterrupt;
        }
    }

    /// <summary>Waits one interval; false once the watch is stopped.</summary>
    private static async Task<bool> Pause(TimeSpan interval, CancellationToken stop)
    {
        try
        {
            await Task.Delay(interval, stop);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
