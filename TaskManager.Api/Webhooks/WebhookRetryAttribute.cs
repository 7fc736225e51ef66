using Hangfire.Common;
using Hangfire.States;

namespace TaskManager.Api.Webhooks;

/// <summary>
/// The backoff of a webhook delivery's job: a failed attempt is scheduled again after the next of
/// <see cref="DelaysSeconds"/> (TaskManager:Webhooks:RetryDelaysSeconds), each shown on the
/// dashboard as "Retry attempt N of M"; past the last, the job is deleted, which lets the task's
/// next delivery (a continuation) go. Hangfire's own AutomaticRetry is off for the job
/// (<c>Attempts = 0</c>); this filter runs after it.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class WebhookRetryAttribute : JobFilterAttribute, IElectStateFilter
{
    public const string RetryCountParameter = "RetryCount";

    /// <summary>The delays between attempts, set from the options when the scheduler starts.</summary>
    public static IReadOnlyList<int> DelaysSeconds { get; set; } = WebhookDelays.Default;

    /// <summary>How many attempts a delivery gets: the first, and one after each delay.</summary>
    public static int Attempts => DelaysSeconds.Count + 1;

    public WebhookRetryAttribute() => Order = 30;

    public void OnStateElection(ElectStateContext context)
    {
        if (context.CandidateState is not FailedState failed)
        {
            return;
        }
        var retries = context.GetJobParameter<int>(RetryCountParameter) + 1;
        if (retries <= DelaysSeconds.Count)
        {
            context.SetJobParameter(RetryCountParameter, retries);
            context.CandidateState = new ScheduledState(TimeSpan.FromSeconds(DelaysSeconds[retries - 1]))
            {
                Reason = $"Retry attempt {retries} of {DelaysSeconds.Count}: {failed.Exception.Message}",
            };
        }
        else
        {
            context.CandidateState = new DeletedState
            {
                Reason = $"Gave up after {Attempts} attempts: {failed.Exception.Message}",
            };
        }
    }
}

/// <summary>The delays between a webhook delivery's attempts.</summary>
public static class WebhookDelays
{
    /// <summary>Growing from 5 s to 12 h: ten more attempts over about a day.</summary>
    public static readonly IReadOnlyList<int> Default = [5, 30, 120, 300, 1800, 3600, 7200, 14400, 28800, 43200];

    /// <summary>A comma list of whole seconds, or why it is not one.</summary>
    public static IReadOnlyList<int>? Parse(string? text, out string? error)
    {
        error = null;
        var parts = (text ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var delays = new List<int>();
        foreach (var part in parts)
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
                || seconds is < 1 or > 86_400)
            {
                error = $"TaskManager:Webhooks:RetryDelaysSeconds must be a comma list of whole seconds from 1 to 86400, not '{text}'.";
                return null;
            }
            delays.Add(seconds);
        }
        if (delays.Count > 30)
        {
            error = "TaskManager:Webhooks:RetryDelaysSeconds lists at most 30 delays.";
            return null;
        }
        return delays;
    }
}
