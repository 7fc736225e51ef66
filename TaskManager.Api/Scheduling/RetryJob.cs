using Hangfire;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Scheduling;

/// <summary>
/// The Hangfire job behind each retry: when its backoff is over, the task goes back to its
/// queue. Named after the task and the attempt, so the dashboard shows every pending retry.
/// </summary>
public sealed partial class RetryJob(ISchedulerStore store, ILogger<RetryJob> logger)
{
    [JobDisplayName("Retry task {0} after attempt {1}")]
    [AutomaticRetry(Attempts = 3)]
    public async Task RunAsync(string taskId, int attempt)
    {
        var queued = await store.RequeueAsync(taskId, attempt);
        LogRetry(logger, taskId, attempt, queued ? "queued again" : "no longer waiting for this retry");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Retry of task {TaskId} after attempt {Attempt}: {Outcome}")]
    private static partial void LogRetry(ILogger logger, string taskId, int attempt, string outcome);
}
