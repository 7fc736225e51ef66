namespace TaskManager.Api.Observability;

/// <summary>
/// The service's task log lines, with the task id as a named field (the OpenTelemetry log
/// exporter adds the trace id of the request they happen in). Debug: one line per task on the hot
/// path costs nothing when the level is off.
/// </summary>
public static partial class TaskLog
{
    [LoggerMessage(Level = LogLevel.Debug, Message = "Task {TaskId} ({TaskType}) submitted for tenant {Tenant}")]
    public static partial void Submitted(ILogger logger, string taskId, string taskType, string tenant);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Task {TaskId} attempt {Attempt} on worker {WorkerId} ended {Outcome}; the task is now {Status}")]
    public static partial void AttemptEnded(ILogger logger, string taskId, int? attempt, string workerId, string outcome, string status);
}
