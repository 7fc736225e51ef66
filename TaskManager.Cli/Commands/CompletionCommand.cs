using System.CommandLine;

namespace TaskManager.Cli.Commands;

/// <summary>
/// <c>tm completion bash|zsh</c>: prints a script that completes <c>tm</c>'s commands and options
/// by asking <c>tm</c> itself through System.CommandLine's <c>[suggest]</c> directive, so that the
/// completions always match the installed version; no other tool (dotnet-suggest) is needed.
/// </summary>
public static class CompletionCommand
{
    private const string Bash = """
        # tm completion for bash: add to ~/.bashrc: source <(tm completion bash)
        _tm_complete() {
            local IFS=$'\n'
            local line="${COMP_LINE:0:COMP_POINT}"
            COMPREPLY=($(compgen -W "$(tm "[suggest:${#line}]" "$line" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -o default -F _tm_complete tm
        """;

    private const string Zsh = """
        # tm completion for zsh: add to ~/.zshrc: source <(tm completion zsh)
        autoload -U +X bashcompinit && bashcompinit
        _tm_complete() {
            local IFS=$'\n'
            local line="${COMP_LINE:0:COMP_POINT}"
            COMPREPLY=($(compgen -W "$(tm "[suggest:${#line}]" "$line" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -o default -F _tm_complete tm
        """;

    public static Command Build()
    {
        var shell = new Argument<string>("SHELL") { Description = "bash or zsh" };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        var completion = new Command("completion", "Print a shell completion script: source <(tm completion bash)") { shell };
        completion.WithAction((context, _) =>
        {
            Console.Out.WriteLine(context.Value(shell) == "zsh" ? Zsh : Bash);
            return Task.FromResult(ExitCodes.Done);
        });
        return completion;
    }
}
