using System.Globalization;
using System.Text.Json;
using Spectre.Console;

namespace TaskManager.Cli;

/// <summary>
/// Where <c>tm</c> writes: results on stdout (tables, or the API's JSON with <c>--json</c>),
/// everything else (progress, status lines, errors) on stderr, so that a pipe gets only the result.
/// </summary>
public static class Output
{
    /// <summary>Spectre.Console on stdout; as wide as a terminal, or 200 columns when piped so that tables are not squeezed.</summary>
    public static IAnsiConsole Out { get; } = Create(Console.Out, Console.IsOutputRedirected);

    /// <summary>Spectre.Console on stderr, for progress bars and errors.</summary>
    public static IAnsiConsole Error { get; } = Create(Console.Error, Console.IsErrorRedirected);

    public static bool ErrorIsTerminal => !Console.IsErrorRedirected;

    private static IAnsiConsole Create(TextWriter writer, bool redirected)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            // Decided by the stream's own redirection: Spectre's detection looks at stdout's, which
            // would hide the progress bar on a terminal's stderr while the ids go to a file.
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Yes,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Yes,
        });
        if (redirected)
        {
            console.Profile.Width = 200;
        }
        return console;
    }

    /// <summary>The API's JSON as it came, on one line, for <c>--json</c>.</summary>
    public static void Json(string json) => Console.Out.WriteLine(json.Trim());

    public static void Json(JsonElement json) => Console.Out.WriteLine(json.GetRawText());

    /// <summary>A line on stderr, for what is not the result.</summary>
    public static void Note(string line) => Console.Error.WriteLine(line);

    /// <summary>
    /// An error answer on stderr: the status, the ProblemDetails' title and detail, and each
    /// field's errors (a 400's <c>errors</c>, keyed by the field's path).
    /// </summary>
    public static void Problem(ApiException ex)
    {
        var lines = new List<string>();
        JsonElement problem = default;
        try
        {
            if (!string.IsNullOrWhiteSpace(ex.Body))
            {
                problem = ApiClient.Parse(ex.Body);
            }
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's page): the status says what there is to say.
        }
        if (problem.ValueKind == JsonValueKind.Object)
        {
            var title = Text(problem, "title") ?? ex.Reason;
            lines.Add($"error: {ex.Status} {title}");
            if (Text(problem, "detail") is { } detail)
            {
                lines.Add($"  {detail}");
            }
            if (problem.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
            {
                foreach (var field in errors.EnumerateObject())
                {
                    var messages = field.Value.ValueKind == JsonValueKind.Array
                        ? field.Value.EnumerateArray().Select(m => m.ToString())
                        : [field.Value.ToString()];
                    lines.AddRange(messages.Select(m => $"  {field.Name}: {m}"));
                }
            }
        }
        else
        {
            lines.Add($"error: {ex.Status} {ex.Reason}");
        }
        foreach (var line in lines)
        {
            Console.Error.WriteLine(line);
        }
    }

    public static bool IsJson(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        try
        {
            using var _ = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    public static string? Text(JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText()
            : null;

    public static string StatusMarkup(string? status) => status switch
    {
        "succeeded" => "[green]succeeded[/]",
        "failed" or "timed_out" or "expired" => $"[red]{status}[/]",
        "canceled" or "canceling" => $"[yellow]{status}[/]",
        "running" => "[blue]running[/]",
        null => "",
        _ => Markup.Escape(status),
    };

    /// <summary>A time as the API writes it (UTC, ISO 8601), shown in local time to the second; <paramref name="compact"/>: today's without the date.</summary>
    public static string Time(string? iso, bool compact = false)
    {
        if (iso is null || !DateTimeOffset.TryParse(iso, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var t))
        {
            return "";
        }
        var local = t.ToLocalTime();
        var format = compact && local.Date == DateTimeOffset.Now.Date ? "HH:mm:ss" : "yyyy-MM-dd HH:mm:ss";
        return local.ToString(format, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// A table as tm draws them: no borders, a bold header, two spaces between columns, so that a
    /// listing fits a terminal of 100 columns; a table too wide for the terminal wraps its cells.
    /// </summary>
    public static Table Table(params string[] columns)
    {
        var table = new Table().Border(TableBorder.None).ShowHeaders();
        foreach (var column in columns)
        {
            table.AddColumn(new TableColumn($"[bold]{column}[/]").Padding(0, 0, 2, 0));
        }
        return table;
    }

    /// <summary>A fraction as a whole percentage, "45%".</summary>
    public static string Percent(double fraction) => $"{Math.Round(fraction * 100).ToString(CultureInfo.InvariantCulture)}%";

    /// <summary>A text bar of <paramref name="width"/> cells, <paramref name="fraction"/> of it full.</summary>
    public static string Bar(double fraction, int width = 20)
    {
        var full = (int)Math.Round(Math.Clamp(fraction, 0, 1) * width, MidpointRounding.AwayFromZero);
        return new string('█', full) + new string('░', width - full);
    }
}
