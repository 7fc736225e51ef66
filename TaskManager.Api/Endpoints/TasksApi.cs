using Microsoft.AspNetCore.Http.HttpResults;
using TaskManager.Api.Domain;
using TaskManager.Api.Storage;

namespace TaskManager.Api.Endpoints;

/// <summary>The client API: create, read, list, cancel and delete tasks.</summary>
public static class TasksApi
{
    public const int DefaultPageSize = 20;
    public const int MaxPageSize = 100;

    public static RouteGroupBuilder MapTasksApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/tasks")
            .WithTags("Tasks")
            .AddEndpointFilter<ValidationFilter>();

        group.MapPost("/", Submit)
            .Accepts<TaskRequestDoc>("application/json")
            .WithSummary("Create a task")
            .WithDescription("Validates the request per task type, stores it and queues it. 202 means the task is in Redis.");
        group.MapGet("/{id}", Get).WithSummary("Get a task");
        group.MapGet("/", List).WithSummary("List tasks, newest first, with cursor paging");
        group.MapMethods("/{id}/cancel", ["PATCH", "POST"], Cancel)
            .WithSummary("Cancel a task")
            .WithDescription("Queued or scheduled: canceled at once. Running: canceling until its worker stops it.");
        group.MapDelete("/{id}", Delete).WithSummary("Delete a task in a final state");
        return group;
    }

    private static async Task<Accepted<TaskDto>> Submit(SubmitTaskBody body, ITaskQueue queue)
    {
        var task = await queue.SubmitAsync(body.Request!, SubmitTaskBody.TraceParent());
        return TypedResults.Accepted($"/api/tasks/{task.Id}", TaskDto.From(task));
    }

    private static async Task<Results<Ok<TaskDto>, ProblemHttpResult>> Get(string id, ITaskInspector inspector)
    {
        var task = Ids.IsTaskId(id) ? await inspector.GetAsync(id) : null;
        return task is null ? Problems.TaskNotFound(id) : TypedResults.Ok(TaskDto.From(task));
    }

    private static async Task<Ok<TaskListDto>> List(ListQuery query, ITaskInspector inspector)
    {
        var page = await inspector.ListAsync(query.ToTaskQuery());
        return TypedResults.Ok(new TaskListDto(page.Items.Select(TaskDto.From).ToArray(), page.NextCursor));
    }

    private static async Task<Results<Accepted<TaskDto>, ProblemHttpResult>> Cancel(string id, ITaskQueue queue, ITaskInspector inspector)
    {
        if (!Ids.IsTaskId(id))
        {
            return Problems.TaskNotFound(id);
        }
        var outcome = await queue.CancelAsync(id);
        if (!outcome.Ok)
        {
            return Problems.From(outcome, id, "canceled");
        }
        var task = await inspector.GetAsync(id);
        return task is null ? Problems.TaskNotFound(id) : TypedResults.Accepted($"/api/tasks/{id}", TaskDto.From(task));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, ITaskQueue queue)
    {
        if (!Ids.IsTaskId(id))
        {
            return Problems.TaskNotFound(id);
        }
        var outcome = await queue.DeleteAsync(id);
        return outcome.Ok ? TypedResults.NoContent() : Problems.From(outcome, id, "deleted until it is final");
    }

    /// <summary>Query of <c>GET /api/tasks</c>: <c>status</c> and <c>type</c> take comma lists.</summary>
    public sealed class ListQuery : IValidatable
    {
        public string? Status { get; init; }
        public string? Type { get; init; }
        public string? Limit { get; init; }
        public string? Cursor { get; init; }

        public static ValueTask<ListQuery?> BindAsync(HttpContext context)
        {
            var q = context.Request.Query;
            return ValueTask.FromResult<ListQuery?>(new ListQuery
            {
                Status = q["status"].ToString(),
                Type = q["type"].ToString(),
                Limit = q["limit"].ToString(),
                Cursor = q["cursor"].ToString(),
            });
        }

        public IDictionary<string, string[]> Validate()
        {
            var errors = new Dictionary<string, string[]>();
            if (Split(Status).FirstOrDefault(s => !TaskState.IsKnown(s)) is { } badStatus)
            {
                errors["status"] = [$"'{badStatus}' is not a status; use {string.Join(", ", TaskState.All)}."];
            }
            if (Split(Type).FirstOrDefault(t => !TaskTypes.IsKnown(t)) is { } badType)
            {
                errors["type"] = [$"'{badType}' is not a task type; use {string.Join(", ", TaskTypes.All)}."];
            }
            if (!string.IsNullOrEmpty(Limit) && (!int.TryParse(Limit, out var limit) || limit is < 1 or > MaxPageSize))
            {
                errors["limit"] = [$"must be a whole number from 1 to {MaxPageSize}."];
            }
            if (!string.IsNullOrEmpty(Cursor) && !Ids.IsTaskId(Cursor))
            {
                errors["cursor"] = ["is not a cursor this API returned."];
            }
            return errors;
        }

        public TaskQuery ToTaskQuery()
        {
            var statuses = Split(Status);
            var types = Split(Type);
            return new TaskQuery(
                statuses.Length > 0 ? statuses : TaskState.All,
                types.Length > 0 ? types : TaskTypes.All,
                string.IsNullOrEmpty(Limit) ? DefaultPageSize : int.Parse(Limit),
                string.IsNullOrEmpty(Cursor) ? null : Cursor);
        }

        private static string[] Split(string? list) =>
            string.IsNullOrEmpty(list) ? [] : list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToArray();
    }
}
