using System.Diagnostics;
using System.Diagnostics.Metrics;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Observability;

/// <summary>
/// The service's one Meter and one ActivitySource, both named <c>TaskManager</c> (ServiceDefaults
/// exports them to the Aspire dashboard; <c>/metrics</c> serves the Meter to Prometheus).
/// </summary>
public sealed class TaskTelemetry : IDisposable
{
    public const string Name = "TaskManager";

    public static readonly ActivitySource Source = new(Name);

    private readonly Meter meter;
    private readonly Counter<long> submitted;
    private readonly Counter<long> finished;
    private readonly Counter<long> retried;
    private readonly Counter<long> leasesExpired;
    private readonly Counter<long> webhookAttempts;
    private readonly Histogram<double> wait;
    private readonly Histogram<double> run;

    public TaskTelemetry(IMeterFactory meters, FleetGauges gauges)
    {
        meter = meters.Create(Name);
        submitted = meter.CreateCounter<long>("taskmanager.tasks.submitted", description: "Tasks accepted, by type.");
        finished = meter.CreateCounter<long>("taskmanager.tasks.finished", description: "Tasks that reached a final state, by type and outcome.");
        retried = meter.CreateCounter<long>("taskmanager.tasks.retried", description: "Attempts that ended in a retry, by type.");
        leasesExpired = meter.CreateCounter<long>("taskmanager.leases.expired", description: "Attempts taken back from silent workers, by type.");
        webhookAttempts = meter.CreateCounter<long>("taskmanager.webhooks.deliveries",
            description: "Webhook delivery attempts, by event and outcome (delivered, retrying, failed, refused, gone).");
        wait = meter.CreateHistogram<double>("taskmanager.task.wait", unit: "ms", description: "Time from queued to started, by type.");
        run = meter.CreateHistogram<double>("taskmanager.task.run", unit: "ms", description: "Run time of attempts, by type and outcome.");
        meter.CreateObservableGauge("taskmanager.queue.depth", gauges.QueueDepths, description: "Queued tasks, by type.");
        meter.CreateObservableGauge("taskmanager.workers.live", gauges.LiveWorkers, description: "Workers by status.");
    }

    public void Submitted(string type) => submitted.Add(1, new KeyValuePair<string, object?>("type", type));

    public void Waited(string type, long ms) => wait.Record(ms, new KeyValuePair<string, object?>("type", type));

    public void WebhookAttempted(string @event, string outcome) => webhookAttempts.Add(1,
        new KeyValuePair<string, object?>("event", @event), new KeyValuePair<string, object?>("outcome", outcome));

    public void LeaseExpired(string type) => leasesExpired.Add(1, new KeyValuePair<string, object?>("type", type));

    /// <summary>Counts where a task went after an attempt or a cancel: final, or a retry.</summary>
    public void Moved(string type, string status)
    {
        if (TaskState.IsFinal(status))
        {
            finished.Add(1, new KeyValuePair<string, object?>("type", type), new KeyValuePair<string, object?>("outcome", status));
        }
        else if (status is TaskState.Scheduled or TaskState.Queued)
        {
            retried.Add(1, new KeyValuePair<string, object?>("type", type));
        }
    }

    public void Ran(string type, string outcome, TimeSpan duration) =>
        run.Record(duration.TotalMilliseconds, new KeyValuePair<string, object?>("type", type), new KeyValuePair<string, object?>("outcome", outcome));

    /// <summary>
    /// Records a span of the task's trace after the fact (an attempt's execution, a timeout, a
    /// lease expiry): parented to the submission through the stored traceparent, with the given times.
    /// </summary>
    public static void RecordSpan(string name, string? traceParent, DateTimeOffset start, DateTimeOffset end, params (string Key, object? Value)[] tags)
    {
        if (traceParent is null || !ActivityContext.TryParse(traceParent, null, out var parent))
        {
            return;
        }
        using var activity = Source.StartActivity(name, ActivityKind.Internal, parent, startTime: start);
        if (activity is null)
        {
            return;
        }
        foreach (var (key, value) in tags)
        {
            activity.SetTag(key, value);
        }
        activity.SetEndTime(end.UtcDateTime);
    }

    public void Dispose() => meter.Dispose();
}
