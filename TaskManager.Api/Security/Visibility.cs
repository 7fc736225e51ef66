using System.Security.Claims;
using TaskManager.Api.Domain;


namespace TaskManager.Api.Security;

/// <summary>A tenant sees only its own tasks; another tenant's task looks exactly like an unknown one.</summary>
public static class Visibility
{
    public static bool CanSee(this ClaimsPrincipal user, TaskRecord task) => user.IsAdmin() || task.Tenant == user.Tenant();

    /// <summary>The task, when it exists and the caller may see it; else null (a 404).</summary>
    public static async Task<TaskRecord?> GetVisibleAsync(this ITaskInspector inspector, string id, ClaimsPrincipal user) =>
        TaskIds.IsTaskId(id) && await inspector.GetAsync(id) is { } task && user.CanSee(task) ? task : null;
}
