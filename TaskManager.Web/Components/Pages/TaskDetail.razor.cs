using System.Text.Json;
using Microsoft.AspNetCore.Components;
using TaskManager.Web.Components.Shared;
using TaskManager.Web.Services;

namespace TaskManager.Web.Components.Pages;

/// <summary>
/// One task: read again every 2 s until it ends, and followed live through its event stream
/// (read by the server over the circuit, so the key never reaches the browser): tokens appear as
/// they are made, progress moves. The stream is closed when the page closes or the task ends.
/// </summary>
public partial class TaskDetail
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    [Parameter]
    public string Id { get; set; } = "";

    [Inject]
    private NavigationManager Navigation { get; set; } = default!;

    private TaskItem? task;
    private IReadOnlyList<WebhookDelivery>? deliveries;
    private string? problem, actionProblem, pending, progressMessage, lastEventId;
    private double? progress;
    private ElementReference confirmButton;
    private bool following;
    private readonly SortedDictionary<int, string> chunks = [];
    private readonly List<string> logs = [];

    private string StreamedText => chunks.Count == 0 ? "" : chunks.Last().Value;

    private string ConfirmText => pending switch
    {
        "cancel" => "Cancel this task? A running task is stopped on its worker.",
        "retry" => "Run this task again?",
        _ => "Delete this task and its history? This cannot be undone.",
    };

    protected override async Task RefreshAsync()
    {
        // An ended task changes no more, but for its webhook deliveries: read again until they are made.
        if (task is { IsFinal: true } && deliveries is not null && !DeliveriesDue)
        {
            return;
        }
        var result = await Api.GetAsync(Id, Closed);
        problem = result.Problem is { Status: 404 } ? "No such task (or not one of your tenant's)." : result.Problem?.ToString();
        if (result.Value is { } value)
        {
            task = value;
            progress = value.Progress ?? progress;
            progressMessage = value.ProgressMessage ?? progressMessage;
            deliveries = (await Api.WebhooksAsync(Id, Closed)).Value?.Deliveries ?? deliveries;
        }
    }

    protected override void OnAfterRender(bool firstRender)
    {
        base.OnAfterRender(firstRender);
        // After a render rather than on the first only: the task may be read after that one.
        // A stream that ends before the task does is opened again from where it stopped
        // (Last-Event-ID), a few times at most.
        if (task is { IsFinal: false } && !following && streams < MaxStreams)
        {
            _ = FollowAsync();
        }
    }

    protected override async Task OnAfterRenderAsync(bool firstRender)
    {
        if (pending is not null && !confirmFocused)
        {
            confirmFocused = true;
            await confirmButton.FocusAsync();
        }
        else if (pending is null)
        {
            confirmFocused = false;
        }
    }

    private const int MaxStreams = 5;
    private int streams;
    private bool confirmFocused;

    private async Task FollowAsync()
    {
        following = true;
        streams++;
        try
        {
            await foreach (var e in Api.EventsAsync(Id, lastEventId, Closed))
            {
                await InvokeAsync(() =>
                {
                    Apply(e);
                    StateHasChanged();
                });
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (HttpRequestException)
        {
            // The 2-second reads carry on without the stream.
        }
        finally
        {
            following = false;
        }
        if (!Closed.IsCancellationRequested)
        {
            await InvokeAsync(async () =>
            {
                deliveries = null;
                await RefreshAsync();
                StateHasChanged();
            });
        }
    }

    private void Apply(TaskEvent e)
    {
        lastEventId = e.Id ?? lastEventId;
        var attempt = e.Data.TryGetProperty("attempt", out var a) && a.TryGetInt32(out var n) ? n : 0;
        switch (e.Kind)
        {
            case "chunk" when e.Data.TryGetProperty("text", out var text):
                chunks[attempt] = chunks.GetValueOrDefault(attempt, "") + text.GetString();
                break;
            case "progress":
                progress = e.Data.TryGetProperty("progress", out var p) && p.TryGetDouble(out var value) ? value : progress;
                progressMessage = e.Data.TryGetProperty("message", out var m) ? m.GetString() : progressMessage;
                break;
            case "log" when e.Data.TryGetProperty("line", out var line):
                logs.Add(line.GetString() ?? "");
                if (logs.Count > 500)
                {
                    logs.RemoveAt(0);
                }
                break;
            case "status" when e.Data.TryGetProperty("status", out var s) && task is not null && !task.IsFinal:
                task = task with { Status = s.GetString() ?? task.Status };
                break;
        }
    }

    private async Task ConfirmAsync()
    {
        var action = pending;
        pending = null;
        actionProblem = null;
        switch (action)
        {
            case "cancel":
                actionProblem = (await Api.CancelAsync(Id, Closed)).Problem?.ToString();
                break;
            case "retry":
                var retried = await Api.RetryAsync(Id, Closed);
                actionProblem = retried.Problem?.ToString();
                if (retried.Ok)
                {
                    chunks.Clear();
                    progress = 0;
                    task = retried.Value;
                    streams = 0;
                }
                break;
            case "delete":
                var deleted = await Api.DeleteAsync(Id, Closed);
                if (deleted.Ok)
                {
                    Navigation.NavigateTo("/tasks");
                    return;
                }
                actionProblem = deleted.Problem?.ToString();
                break;
        }
        deliveries = null;
        await RefreshAsync();
    }

    /// <summary>A delivery still being made, or a webhook's first not made yet.</summary>
    private bool DeliveriesDue =>
        deliveries is not null && (deliveries.Any(d => d.State == "pending") || (task?.Webhook is not null && deliveries.Count == 0));

    private async Task RedeliverAsync(string deliveryId)
    {
        var sent = await Api.RedeliverAsync(Id, deliveryId, Closed);
        actionProblem = sent.Problem?.ToString();
        deliveries = (await Api.WebhooksAsync(Id, Closed)).Value?.Deliveries ?? deliveries;
    }

    private static string Pretty(JsonElement element) => JsonSerializer.Serialize(element, Indented);
}
