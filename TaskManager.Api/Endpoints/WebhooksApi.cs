using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using TaskManager.Api.Domain;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>A task's webhook deliveries: each with its attempts, and sending one again.</summary>
public static class WebhooksApi
{
    public static RouteGroupBuilder MapWebhooksApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/tasks/{id}/webhooks").WithTags("Webhooks")
            .RequireAuthorization(Policies.Client)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit);
        group.MapGet("/", List)
            .WithSummary("A task's webhook deliveries, oldest first, each with its attempts (time, status code, duration, error)");
        group.MapPost("/{deliveryId}/redeliver", Redeliver)
            .WithSummary("Send a delivery again, under its webhook-id, with a fresh count of attempts")
            .WithDescription("409 while it is still being delivered.");
        return group;
    }

    private static async Task<Results<Ok<DeliveryListDto>, ProblemHttpResult>> List(
        string id, ClaimsPrincipal user, ITaskInspector inspector, IWebhookDeliveries deliveries)
    {
        if (await inspector.GetVisibleAsync(id, user) is null)
        {
            return Problems.TaskNotFound(id);
        }
        return TypedResults.Ok(new DeliveryListDto((await deliveries.ListAsync(id)).Select(DeliveryDto.From).ToArray()));
    }

    private static async Task<Results<Accepted<DeliveryDto>, ProblemHttpResult>> Redeliver(
        string id, string deliveryId, ClaimsPrincipal user, HttpRequest request, ITaskInspector inspector, IWebhookDeliveries deliveries)
    {
        if (await inspector.GetVisibleAsync(id, user) is null)
        {
            return Problems.TaskNotFound(id);
        }
        var delivery = await deliveries.GetAsync(deliveryId);
        if (delivery is null || delivery.TaskId != id)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Delivery not found.",
                detail: $"Task '{id}' has no webhook delivery '{deliveryId}'.");
        }
        // The script checks again, atomically: of two requests at once, one is taken and the other told 409.
        if (delivery.State == WebhookStates.Pending || !await deliveries.RequestRedeliveryAsync(id, deliveryId))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The delivery is still being made.",
                detail: $"Delivery '{deliveryId}' is pending; ask again once it is delivered or has failed.");
        }
        return TypedResults.Accepted(TaskLinks.Of(request).Task(id) + "/webhooks", DeliveryDto.From(delivery with { State = WebhookStates.Pending }));
    }

    public sealed record DeliveryListDto(IReadOnlyList<DeliveryDto> Deliveries);

    public sealed record DeliveryDto(string Id, string Event, string Target, string State, DateTimeOffset CreatedAt, string? JobId,
        IReadOnlyList<DeliveryAttemptDto> Attempts)
    {
        public static DeliveryDto From(WebhookDelivery d) => new(d.Id, d.Event, d.Target, d.State, d.CreatedAt, d.JobId,
            d.Attempts.Select(a => new DeliveryAttemptDto(a.At, a.StatusCode, a.DurationMs, a.Error)).ToArray());
    }

    public sealed record DeliveryAttemptDto(DateTimeOffset At, int? StatusCode, double DurationMs, string? Error);
}
