using System.Text;
using System.Text.Json;
using Spectre.Console;

namespace TaskManager.Cli.Commands;

/// <summary>
/// <c>tm submit --file tasks.jsonl</c>: one task request a line (blank lines skipped), sent to
/// <c>POST /api/tasks/batch</c> in batches of <see cref="BatchSize"/>, with a progress bar (on a
/// terminal; elsewhere a line per batch on stderr). Prints each created task's id, one a line, in
/// the file's order; a refused line is reported on stderr with its line number and the exit code
/// is then 3.
/// </summary>
public static class BatchSubmit
{
    /// <summary>The API's limit on one batch.</summary>
    public const int BatchSize = 1000;

    /// <summary>How many refused lines are reported one by one; the rest are counted (a tenant's queue cap can refuse thousands).</summary>
    private const int MaxReported = 20;

    public static async Task<int> RunAsync(CommandContext context, FileInfo file, CancellationToken cancel)
    {
        if (!file.Exists)
        {
            throw new UsageException($"--file: there is no file {file.FullName}.");
        }
        var lines = new List<(int Number, string Json)>();
        var number = 0;
        foreach (var line in await File.ReadAllLinesAsync(file.FullName, cancel))
        {
            number++;
            if (!string.IsNullOrWhiteSpace(line))
            {
                lines.Add((number, line));
            }
        }
        if (lines.Count == 0)
        {
            throw new UsageException($"{file.Name} holds no task request.");
        }

        var refused = 0;
        async Task SendAll(Action<int> advanced)
        {
            foreach (var batch in lines.Chunk(BatchSize))
            {
                var body = new StringBuilder("{\"tasks\":[");
                body.AppendJoin(',', batch.Select(l => l.Json)).Append("]}");
                string answer;
                try
                {
                    answer = await context.Api.SendAsync(HttpMethod.Post, "api/tasks/batch", body.ToString(), cancel: cancel);
                }
                catch (ApiException)
                {
                    // The whole batch was refused (a line that is not JSON makes the body invalid): say which lines it held.
                    Output.Note($"error: lines {batch[0].Number} to {batch[^1].Number} were refused as a whole:");
                    throw;
                }
                refused += Report(context, batch, answer, MaxReported - refused);
                advanced(batch.Length);
            }
        }

        if (Output.ErrorIsTerminal && !context.Json)
        {
            await Output.Error.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .StartAsync(async progress =>
                {
                    var bar = progress.AddTask($"submitting {lines.Count} tasks", maxValue: lines.Count);
                    await SendAll(n => bar.Increment(n));
                });
        }
        else
        {
            var sent = 0;
            await SendAll(n => Output.Note($"submitted {sent += n}/{lines.Count}"));
        }
        if (refused > 0)
        {
            Output.Note($"error: {refused} of {lines.Count} task requests were refused" + (refused > MaxReported ? $" (the first {MaxReported} are listed above)." : "."));
        }
        return refused == 0 ? ExitCodes.Done : ExitCodes.Refused;
    }

    /// <summary>Prints the ids of a batch's created tasks (or, with --json, the API's answer) and reports up to <paramref name="report"/> refused lines; returns how many were refused.</summary>
    private static int Report(CommandContext context, (int Number, string Json)[] batch, string answer, int report)
    {
        var result = ApiClient.Parse(answer);
        if (context.Json)
        {
            Output.Json(answer);
        }
        var refused = 0;
        var ids = new StringBuilder();
        foreach (var item in result.GetProperty("items").EnumerateArray())
        {
            var index = item.GetProperty("index").GetInt32();
            if (item.TryGetProperty("task", out var task) && task.ValueKind == JsonValueKind.Object)
            {
                ids.Append(task.GetProperty("id").GetString()).Append('\n');
                continue;
            }
            if (++refused > report)
            {
                continue;
            }
            var problem = item.TryGetProperty("problem", out var p) ? p : default;
            var errors = problem.ValueKind == JsonValueKind.Object && problem.TryGetProperty("errors", out var e) && e.ValueKind == JsonValueKind.Object
                ? string.Join("; ", e.EnumerateObject().Select(f => $"{f.Name}: {string.Join(" ", f.Value.EnumerateArray().Select(m => m.ToString()))}"))
                : Output.Text(problem, "detail");
            Output.Note($"error: line {batch[index].Number}: {item.GetProperty("status").GetInt32()} {Output.Text(problem, "title")} {errors}".TrimEnd());
        }
        if (!context.Json)
        {
            Console.Out.Write(ids.ToString());
        }
        return refused;
    }
}
