namespace TaskManager.Cli;

/// <summary>The exit codes of <c>tm</c>, documented in docs/cli.md, for scripts to branch on.</summary>
public static class ExitCodes
{
    /// <summary>Done: the call succeeded (and a task waited on succeeded).</summary>
    public const int Done = 0;

    /// <summary>A task waited on or followed ended other than succeeded: failed, canceled, timed out or expired.</summary>
    public const int TaskFailed = 1;

    /// <summary>Bad usage: unknown command or option, a missing or malformed value, no API configured.</summary>
    public const int Usage = 2;

    /// <summary>The API refused the call: any 4xx or 5xx answer; its ProblemDetails is on stderr.</summary>
    public const int Refused = 3;

    /// <summary>The API could not be reached: connection refused, name not resolved, no answer in time.</summary>
    public const int Unreachable = 4;

    /// <summary>tm itself failed (an answer it could not read): EX_SOFTWARE of sysexits.h.</summary>
    public const int Internal = 70;

    /// <summary>Interrupted (Ctrl+C) while following a task that was left running: 128 + SIGINT, as shells report it.</summary>
    public const int Interrupted = 130;
}

/// <summary>A command line that parsed but makes no sense (exit 2).</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>The API answered an error status (exit 3); <see cref="Body"/> is its ProblemDetails, when it sent one.</summary>
public sealed class ApiException(int status, string reason, string? body) : Exception($"{status} {reason}")
{
    public int Status { get; } = status;

    public string Reason { get; } = reason;

    public string? Body { get; } = body;
}

/// <summary>The API could not be reached (exit 4).</summary>
public sealed class UnreachableException(string message, Exception? inner = null) : Exception(message, inner);
