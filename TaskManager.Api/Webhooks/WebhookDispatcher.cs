using Hangfire;
using Hangfire.Server;
using Hangfire.States;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;
using TaskManager.Api.Endpoints;

namespace TaskManager.Api.Webhooks;

/// <summary>
/// Turns the webhook events the store marked into deliveries, in the scheduler role (a Hangfire
/// background process of its own, so a slow receiver never holds up the sweeps): for each one due,
/// the task as it is now becomes the body, a delivery is recorded, and a Hangfire job on the
/// <c>webhooks</c> queue sends it. A task's deliveries go in order: each job waits for the task's
/// previous one to finish (a continuation), so <c>completed</c> is never sent before an earlier
/// event. Redeliveries a client asked for are sent again the same way.
/// </summary>
public sealed partial class WebhookDispatcher(
    IWebhookDeliveries deliveries,
    ITaskInspector inspector,
    IBackgroundJobClient jobs,
    JobStorage storage,
    IOptions<TaskManagerOptions> options,
    ILogger<WebhookDispatcher> logger) : IBackgroundProcess
{
    /// <summary>The least time between two deliveries of a task's output, or of its logs.</summary>
    public static readonly TimeSpan Gap = TimeSpan.FromMilliseconds(500);

    private const int Batch = 500;

    /// <summary>How many tasks' deliveries are made at once.</summary>
    private const int Parallelism = 8;

    public void Execute(BackgroundProcessContext context)
    {
        // Passes while there is work (a backlog takes several), then a wait: Hangfire calls again,
        // and restarts after an error.
        while (RunOnceAsync().GetAwaiter().GetResult() > 0)
        {
        }
        context.Wait(TimeSpan.FromMilliseconds(options.Value.Webhooks.PollIntervalMs));
    }

    /// <summary>Makes the deliveries due now and the redeliveries asked for; returns how many it made.</summary>
    public async Task<int> RunOnceAsync()
    {
        var due = await deliveries.TakeDueAsync(Batch, Gap);
        var links = TaskLinks.At(options.Value.PublicUrl);
        // Tasks side by side (each delivery waits on a few Redis round trips, Hangfire's among
        // them); one task's deliveries one after another, each job following the one before.
        await Parallel.ForEachAsync(due.GroupBy(d => d.TaskId), new ParallelOptions { MaxDegreeOfParallelism = Parallelism },
            async (task, _) =>
            {
                var after = (string?)null;
                foreach (var webhook in task)
                {
                    after = await DispatchAsync(webhook, links, after ?? webhook.LastJob) ?? after;
                }
            });
        var redeliveries = await deliveries.TakeRedeliveriesAsync(Batch);
        foreach (var id in redeliveries)
        {
            if (await deliveries.GetAsync(id) is { } delivery)
            {
                var job = Send(delivery.TaskId, delivery.Event, delivery.Target, id, null);
                await deliveries.SetJobAsync(delivery.TaskId, id, job);
            }
        }
        return due.Count + redeliveries.Count;
    }

    /// <summary>Records one delivery and makes its job, after <paramref name="after"/>; returns the job, or null when the task is gone.</summary>
    private async Task<string?> DispatchAsync(WebhookDue webhook, TaskLinks links, string? after)
    {
        var task = await inspector.GetAsync(webhook.TaskId);
        if (task is null)
        {
            return null; // deleted meanwhile: nothing to tell
        }
        // The body's timestamp is when the event was taken: a task's output deliveries are 500 ms apart by it.
        var id = await deliveries.CreateAsync(webhook, TaskJson.WebhookBody(webhook.Event, task, links, webhook.At));
        var job = Send(webhook.TaskId, webhook.Event, webhook.Target, id, after);
        await deliveries.SetJobAsync(webhook.TaskId, id, job);
        LogDue(logger, webhook.Event, webhook.TaskId, id, job);
        return job;
    }

    /// <summary>A job that sends the delivery: after <paramref name="after"/> (the task's previous delivery job) unless that one is over.</summary>
    private string Send(string taskId, string @event, string target, string deliveryId, string? after)
    {
        var host = Uri.TryCreate(target, UriKind.Absolute, out var uri) ? uri.Host : target;
        if (after is not null && IsRunning(after))
        {
            return jobs.ContinueJobWith<WebhookJob>(after, j => j.DeliverAsync(taskId, @event, host, deliveryId, null),
                new EnqueuedState(WebhookJob.Queue), JobContinuationOptions.OnAnyFinishedState);
        }
        return jobs.Enqueue<WebhookJob>(j => j.DeliverAsync(taskId, @event, host, deliveryId, null));
    }

    /// <summary>Whether a job is still to finish (a continuation of a job that is gone would wait for ever).</summary>
    private bool IsRunning(string jobId)
    {
        using var connection = storage.GetConnection();
        var state = connection.GetJobData(jobId)?.State;
        return state is not null && state != SucceededState.StateName && state != DeletedState.StateName;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Webhook {Event} of task {TaskId}: delivery {DeliveryId}, job {JobId}")]
    private static partial void LogDue(ILogger logger, string @event, string taskId, string deliveryId, string jobId);
}
