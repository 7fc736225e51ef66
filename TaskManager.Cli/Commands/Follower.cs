using System.Globalization;
using System.Text.Json;

namespace TaskManager.Cli.Commands;

/// <summary>
/// <c>tm submit --follow</c>: the task's output chunks (an LLM's tokens) on stdout as they come,
/// its status changes, progress bar (and, with <c>--logs</c>, log lines) on stderr, then its final status. Ctrl+C asks
/// whether to cancel the task (docs/cli.md): on a terminal it asks; with no terminal to ask on it
/// cancels with <c>--cancel-on-interrupt</c> and otherwise leaves the task running (exit 130).
/// </summary>
public sealed class Follower(CommandContext context, string id, bool cancelOnInterrupt, bool showLogs)
{
    private readonly ProgressLine progress = new();
    private bool midLine;
    private bool printedText;
    private int chunkAttempt;
    private string? lastEventId;

    public async Task<int> RunAsync(string createdJson)
    {
        var api = context.Api;
        var stream = new EventStream(api, id, Console.Error);
        if (context.Json)
        {
            Output.Json(createdJson);
        }
        else
        {
            Note($"tm: {id} submitted; Ctrl+C offers to cancel it.");
        }

        using var interrupt = new CancellationTokenSource();
        var interrupted = 0;
        ConsoleCancelEventHandler onInterrupt = (_, e) =>
        {
            // The first Ctrl+C is ours to handle; a second one, while asking, ends tm at once.
            if (Interlocked.Increment(ref interrupted) == 1)
            {
                e.Cancel = true;
                interrupt.Cancel();
            }
        };
        Console.CancelKeyPress += onInterrupt;
        try
        {
            try
            {
                await foreach (var e in stream.ReadAsync(cancel: interrupt.Token))
                {
                    Show(e);
                }
            }
            catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
            {
                if (!ShouldCancel())
                {
                    Note($"tm: task {id} left running; follow it again with: tm events {id}");
                    return ExitCodes.Interrupted;
                }
                await CancelAsync(api);
                await foreach (var e in stream.ReadAsync(lastEventId))
                {
                    Show(e);
                }
            }
        }
        finally
        {
            Console.CancelKeyPress -= onInterrupt;
        }

        var final = await api.SendAsync(HttpMethod.Get, $"api/tasks/{ApiClient.Escape(id)}");
        Finish(final);
        return TaskView.ExitCodeOf(final);
    }

    private bool ShouldCancel()
    {
        progress.Clear();
        EndLine();
        if (Console.IsInputRedirected)
        {
            Note(cancelOnInterrupt ? $"tm: interrupted; canceling task {id} (--cancel-on-interrupt)." : "tm: interrupted.");
            return cancelOnInterrupt;
        }
        Console.Error.Write($"Cancel task {id}? [y/N] ");
        var answer = Console.ReadLine()?.Trim();
        return answer is not null && answer.StartsWith("y", StringComparison.OrdinalIgnoreCase);
    }

    private async Task CancelAsync(ApiClient api)
    {
        try
        {
            await api.SendAsync(HttpMethod.Patch, $"api/tasks/{ApiClient.Escape(id)}/cancel");
            Note($"tm: cancel requested for task {id}.");
        }
        catch (ApiException ex) when (ex.Status == 409)
        {
            Note($"tm: task {id} had already ended.");
        }
    }

    private void Show(TaskEvent e)
    {
        lastEventId = e.Id;
        if (context.Json)
        {
            Output.Json(e.ToJsonLine());
            return;
        }
        switch (e.Kind)
        {
            case "chunk":
                if (e.Text("text") is { } text)
                {
                    progress.Clear();
                    if (chunkAttempt != 0 && e.Attempt != chunkAttempt)
                    {
                        EndLine();
                        Note($"tm: attempt {e.Attempt} starts its output again:");
                    }
                    chunkAttempt = e.Attempt;
                    Console.Out.Write(text);
                    Console.Out.Flush();
                    midLine = !text.EndsWith('\n');
                    printedText = true;
                }
                break;
            case "progress":
                if (e.Data.TryGetProperty("progress", out var value) && value.ValueKind == JsonValueKind.Number)
                {
                    // On a terminal the tokens show the progress of a streamed answer; elsewhere stderr is a log.
                    if (!(printedText && Output.ErrorIsTerminal))
                    {
                        progress.Show(value.GetDouble(), e.Text("message"));
                    }
                }
                break;
            case "log" when showLogs:
                Note($"log: {e.Text("line")}");
                break;
            case "status" when !e.IsFinalStatus: // the last line says how it ended
                Note($"tm: {e.Text("status")}" + (e.Attempt > 0 ? $" (attempt {e.Attempt})" : ""));
                break;
        }
    }

    private void Finish(string json)
    {
        progress.Clear();
        EndLine();
        if (context.Json)
        {
            Output.Json(json);
            return;
        }
        var task = ApiClient.Parse(json);
        var status = Output.Text(task, "status");
        var took = task.TryGetProperty("metrics", out var metrics) && Output.Text(metrics, "run_ms") is { } ms
            ? $" in {double.Parse(ms, CultureInfo.InvariantCulture) / 1000:0.0} s" : "";
        if (!printedText && task.TryGetProperty("output", out var output) && output.ValueKind == JsonValueKind.Object)
        {
            Output.Json(JsonSerializer.Serialize(output, new JsonSerializerOptions { WriteIndented = true }));
        }
        if (task.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
        {
            Note($"error: {Output.Text(error, "code")}: {Output.Text(error, "message")}");
        }
        Note($"tm: {status}{took}."); // the first line named the task
    }

    /// <summary>Ends a line of streamed text, so that what follows on a terminal starts on its own line.</summary>
    private void EndLine()
    {
        if (midLine)
        {
            Console.Out.WriteLine();
            midLine = false;
        }
    }

    private void Note(string line)
    {
        progress.Clear();
        if (midLine && !Console.IsOutputRedirected && Output.ErrorIsTerminal)
        {
            EndLine();
        }
        Output.Note(line);
    }

    /// <summary>
    /// The task's progress on stderr: on a terminal one bar redrawn in place; elsewhere a line each
    /// time it passes another tenth, so that a log is not flooded.
    /// </summary>
    private sealed class ProgressLine
    {
        private bool drawn;
        private int tenth = -1;

        public void Show(double fraction, string? message)
        {
            if (Output.ErrorIsTerminal)
            {
                Console.Error.Write($"\r\u001b[2K{Output.Bar(fraction, 30)} {Output.Percent(fraction),4} {message}");
                drawn = true;
            }
            else if ((int)(fraction * 10) != tenth)
            {
                tenth = (int)(fraction * 10);
                Console.Error.WriteLine($"progress: {Output.Bar(fraction, 30)} {Output.Percent(fraction)} {message}");
            }
        }

        public void Clear()
        {
            if (drawn)
            {
                Console.Error.Write("\r\u001b[2K");
                drawn = false;
            }
        }
    }
}
