using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using TaskManager.Web.Services;

namespace TaskManager.Web.Components.Pages;

/// <summary>The task list: its filters and page live in the URL, so a link shows what someone saw.</summary>
public partial class Tasks
{
    [SupplyParameterFromQuery]
    private string? Status { get; set; }

    [SupplyParameterFromQuery]
    private string? Type { get; set; }

    [SupplyParameterFromQuery]
    private string? Model { get; set; }

    [SupplyParameterFromQuery]
    private string? Tenant { get; set; }

    [SupplyParameterFromQuery]
    private string? Cursor { get; set; }

    [CascadingParameter]
    private Task<AuthenticationState> Authentication { get; set; } = default!;

    private string status = "", type = "", model = "", tenant = "", findId = "";
    private bool isAdmin;
    private TaskPage? page;
    private string? problem;

    private IEnumerable<TaskItem> Shown => page?.Items ?? [];

    protected override async Task OnParametersSetAsync()
    {
        isAdmin = (await Authentication).User.IsInRole(ConsoleRoles.Admin);
        (status, type, model, tenant) = (Status ?? "", Type ?? "", Model ?? "", Tenant ?? "");
        var result = await Api.ListAsync(new TaskFilter(Status, Type, isAdmin ? Tenant : null, Cursor, Model));
        page = result.Value;
        problem = result.Problem?.ToString();
    }

    private void Apply() =>
        Navigation.NavigateTo(Navigation.GetUriWithQueryParameters("/tasks", new Dictionary<string, object?>
        {
            ["status"] = Empty(status),
            ["type"] = Empty(type),
            ["model"] = Empty(model.Trim()),
            ["tenant"] = Empty(tenant.Trim()),
        }));

    private void Find()
    {
        if (!string.IsNullOrWhiteSpace(findId))
        {
            Navigation.NavigateTo($"/tasks/{Uri.EscapeDataString(findId.Trim())}");
        }
    }

    private string Link(string? cursor) => Navigation.GetUriWithQueryParameter("cursor", cursor);

    private static string? Empty(string value) => value.Length == 0 ? null : value;
}
