using System.CommandLine;
using System.CommandLine.Invocation;
using TaskManager.Cli.Commands;

namespace TaskManager.Cli;

/// <summary>What every command's action gets: the parse result, the global options, and the API client made on first use.</summary>
public sealed class CommandContext(ParseResult parse) : IDisposable
{
    private ApiClient? api;

    public ParseResult Parse { get; } = parse;

    /// <summary><c>--json</c>: print the API's JSON instead of tables.</summary>
    public bool Json => Parse.GetValue(Cli.JsonOption);

    public string? Profile => Parse.GetValue(Cli.ProfileOption);

    public ApiClient Api => api ??= new ApiClient(Profiles.Resolve(Profile));

    public T? Value<T>(Option<T> option) => Parse.GetValue(option);

    public T? Value<T>(Argument<T> argument) => Parse.GetValue(argument);

    public void Dispose() => api?.Dispose();
}

/// <summary>The root of <c>tm</c>: the global options, the commands (one file per group under Commands/), and the exit codes.</summary>
public static class Cli
{
    public static readonly Option<bool> JsonOption = new("--json")
    {
        Description = "Print the API's JSON (one document, or one per line for streams) instead of tables",
        Recursive = true,
    };

    public static readonly Option<string?> ProfileOption = new("--profile")
    {
        Description = "The profile of the config file to use (default: the one tm login made default)",
        Recursive = true,
    };

    public static RootCommand Build()
    {
        var root = new RootCommand("tm: submit, follow and manage TaskManager tasks, and look after the fleet, from the command line.")
        {
            JsonOption,
            ProfileOption,
        };
        foreach (var command in LoginCommand.Build()
            .Concat(SubmitCommand.Build())
            .Concat(TaskCommands.Build())
            .Concat(FleetCommands.Build())
            .Concat(QueueCommands.Build())
            .Append(CompletionCommand.Build()))
        {
            root.Add(command);
        }
        return root;
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var root = Build();
        if (args.Length == 0)
        {
            // No command: the help, on stderr (stdout stays for what a command prints), and bad usage.
            await root.Parse("--help").InvokeAsync(new InvocationConfiguration { Output = Console.Error });
            return ExitCodes.Usage;
        }
        var parse = root.Parse(args);
        if (parse.Action is ParseErrorAction)
        {
            foreach (var error in parse.Errors)
            {
                Output.Note($"error: {error.Message}");
            }
            Output.Note("Run 'tm --help' (or 'tm COMMAND --help') for usage.");
            return ExitCodes.Usage;
        }
        // Ctrl+C is left to the runtime (it ends tm) except where a command handles it itself (submit --follow).
        return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }

    /// <summary>Sets a command's action, run with a <see cref="CommandContext"/>; maps the failures to their exit codes.</summary>
    public static Command WithAction(this Command command, Func<CommandContext, CancellationToken, Task<int>> action)
    {
        command.SetAction(async (parse, cancel) =>
        {
            using var context = new CommandContext(parse);
            try
            {
                return await action(context, cancel);
            }
            catch (UsageException ex)
            {
                Output.Note($"error: {ex.Message}");
                return ExitCodes.Usage;
            }
            catch (ApiException ex)
            {
                // With --json a script gets the ProblemDetails as the API sent it, else it is written out for a person.
                if (context.Json && Output.IsJson(ex.Body))
                {
                    Console.Error.WriteLine(ex.Body!.Trim());
                }
                else
                {
                    Output.Problem(ex);
                }
                return ExitCodes.Refused;
            }
            catch (UnreachableException ex)
            {
                Output.Note($"error: {ex.Message}");
                return ExitCodes.Unreachable;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Not 1: a script must not read a bug of tm's (an answer it could not read) as the task's failure.
                Output.Note($"error: tm failed: {ex.GetType().Name}: {ex.Message}");
                return ExitCodes.Internal;
            }
        });
        return command;
    }
}
