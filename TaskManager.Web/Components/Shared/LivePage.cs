using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using TaskManager.Web.Services;

namespace TaskManager.Web.Components.Shared;

/// <summary>
/// A page that reads the API again every <see cref="Interval"/> while it is open: the loop lives and
/// dies with the component, so a closed tab (its circuit gone) reads nothing more.
/// </summary>
public abstract class LivePage : ComponentBase, IDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);

    private readonly CancellationTokenSource closed = new();

    [Inject]
    protected TaskManagerClient Api { get; set; } = default!;

    [CascadingParameter]
    private Task<AuthenticationState> Authentication { get; set; } = default!;

    protected bool IsAdmin { get; private set; }

    /// <summary>Cancelled when the page closes.</summary>
    protected CancellationToken Closed => closed.Token;

    protected abstract Task RefreshAsync();

    protected override async Task OnInitializedAsync()
    {
        var user = (await Authentication).User;
        IsAdmin = user.IsInRole(ConsoleRoles.Admin);
        await RefreshAsync();
    }

    protected override void OnAfterRender(bool firstRender)
    {
        if (firstRender)
        {
            _ = LoopAsync();
        }
    }

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(Interval);
        try
        {
            while (await timer.WaitForNextTickAsync(closed.Token))
            {
                await InvokeAsync(async () =>
                {
                    await RefreshAsync();
                    StateHasChanged();
                });
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public void Dispose()
    {
        // Cancelled, not disposed: a read that finishes after the page closed may still ask for the token.
        closed.Cancel();
        GC.SuppressFinalize(this);
    }
}
