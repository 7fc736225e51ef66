using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using TaskManager.Api.Coordination;
using TaskManager.Api.Domain;
using TaskManager.Api.Observability;
using TaskManager.Api.Security;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// The OpenAI-compatible API under <c>/v1</c>, a door onto tasks: each request becomes a task of
/// the caller's tenant, validated, stored and handed to a waiting worker as <c>POST /api/tasks</c>
/// does (keys, rate limits, queue caps, placement by <c>model</c> all apply), and is answered in
/// OpenAI's shape from the task's result or, streamed, from its events. Every answer names its
/// task in <c>X-TaskManager-Task-Id</c>, so that the task can be read, followed and resumed at
/// <c>/api/tasks/{id}</c>.
/// </summary>
public static class OpenAiApi
{
    public const string Prefix = "/v1";
    public const string TaskIdHeader = "X-TaskManager-Task-Id";
    public const string PriorityHeader = "X-TaskManager-Priority";
    public const string TimeoutHeader = "X-TaskManager-Timeout";

    /// <summary>Adds what the door needs; call before <c>AddProblemDetails</c>, so that its error writer is asked first.</summary>
    public static IServiceCollection AddOpenAiApi(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProblemDetailsWriter, OpenAiProblemWriter>());
        services.AddSingleton<OpenAiModels>();
        return services;
    }

    /// <summary>Whether a request is the OpenAI-compatible API's (and its errors OpenAI-shaped).</summary>
    public static bool Serves(HttpRequest request) => request.Path.StartsWithSegments(Prefix);

    public static RouteGroupBuilder MapOpenAiApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup(Prefix).WithTags("OpenAI-compatible")
            .RequireAuthorization(Policies.Client)
            .RequireRateLimiting(SecuritySetup.PerKeyRateLimit);
        group.MapGet("/models", OpenAiModels.List)
            .WithSummary("The models live workers have loaded or declared (OpenAI's model list)");
        group.MapGet("/models/{model}", OpenAiModels.Get)
            .WithSummary("One model, when a live worker has it loaded or declared");
        Post<OpenAiDocs.ChatRequest>(group, "/chat/completions", OpenAiChat.ChatAsync,
            "Chat completion as an llm task (OpenAI's chat completions), streamed with stream: true", "application/json", "text/event-stream");
        Post<OpenAiDocs.CompletionRequest>(group, "/completions", OpenAiChat.CompletionAsync,
            "Text completion of a prompt as an llm task (OpenAI's legacy completions), streamed with stream: true", "application/json", "text/event-stream");
        Post<OpenAiDocs.ImageRequest>(group, "/images/generations", OpenAiMedia.ImagesAsync,
            "Images as an sd task (OpenAI's image generation), as base64 or as URLs of the task's artifacts", "application/json");
        Post<OpenAiDocs.SpeechRequest>(group, "/audio/speech", OpenAiMedia.SpeechAsync,
            "Speech as a tts task (OpenAI's text to speech): the WAV's bytes", "audio/wav");
        return group;
    }

    private static void Post<TRequest>(RouteGroupBuilder group, string path, Func<HttpContext, Task<IResult>> handler, string summary,
        params string[] answers) where TRequest : notnull
    {
        var endpoint = group.MapPost(path, (Delegate)handler).Accepts<TRequest>("application/json").WithSummary(summary).WithDescription(Description);
        foreach (var type in answers)
        {
            endpoint.Produces(StatusCodes.Status200OK, contentType: type);
        }
    }

    private const string Description =
        "The request becomes a task of the caller's tenant, named in the X-TaskManager-Task-Id header of the answer. " +
        "Optional headers: X-TaskManager-Priority (0-9), X-TaskManager-Timeout (seconds, 1-86400). Fields this API does not " +
        "support are refused with a 400 that names them. Errors are OpenAI's {\"error\": {message, type, param, code}}.";

    /// <summary>
    /// Serves an OpenAI request: reads it (<see cref="BeginAsync"/>), then answers with
    /// <paramref name="stream"/> when it asks to stream, else waits for its task and answers with
    /// <paramref name="answer"/> from the task that succeeded, or with the error that stands for
    /// one that did not.
    /// </summary>
    internal static async Task<IResult> RunAsync(HttpContext http, string type, Func<JsonElement, OpenAiHeaders, OpenAiParsed> parse,
        Func<OpenAiCall, TaskRecord, Task<IResult>> answer, Func<OpenAiCall, Task<IResult>>? stream = null)
    {
        var (call, error) = await BeginAsync(http, type, parse);
        if (call is null)
        {
            return error!;
        }
        if (call.Request.Stream && stream is not null)
        {
            return await stream(call);
        }
        var task = await call.UntilFinalAsync();
        if (http.RequestAborted.IsCancellationRequested)
        {
            return Results.Empty;
        }
        return task?.Status == TaskState.Succeeded ? await answer(call, task) : await call.FailedAsync(task);
    }

    /// <summary>
    /// Reads an OpenAI request (its TaskManager headers, its body, through <paramref name="parse"/>),
    /// checks that a live worker serves its model, and stores its task under the caller's tenant;
    /// the call, or the error to answer.
    /// </summary>
    private static async Task<(OpenAiCall? Call, IResult? Error)> BeginAsync(HttpContext http, string type,
        Func<JsonElement, OpenAiHeaders, OpenAiParsed> parse)
    {
        if (!TryReadHeaders(http.Request, out var headers, out var fault))
        {
            return (null, fault);
        }
        var services = http.RequestServices;
        var options = services.GetRequiredService<IOptions<TaskManagerOptions>>().Value;
        var parsed = await SubmitTaskBody.ReadJsonAsync(http, options.MaxTaskRequestBytes, root => parse(root, headers), message => OpenAiParsed.Fail(null, message));
        if (parsed.Request is not { } request)
        {
            return (null, OpenAiErrors.Invalid(parsed.Param, parsed.Message!));
        }
        if (request.Task.Model is { } model && !await services.GetRequiredService<OpenAiModels>().ServesAsync(type, model))
        {
            return (null, OpenAiErrors.ModelNotFound(model, type));
        }
        var result = await TasksApi.StoreAsync(request.Task, http.User, services.GetRequiredService<LeaseBroker>(),
            services.GetRequiredService<TaskTelemetry>(), services.GetRequiredService<ILogger<TaskTelemetry>>());
        if (result.Kind != SubmitKind.Created)
        {
            http.Response.Headers.RetryAfter = "5";
            return (null, OpenAiErrors.Error(StatusCodes.Status429TooManyRequests,
                $"This tenant has {result.QueuedCount} tasks queued, its cap; retry when some have started.", code: "queue_full"));
        }
        http.Response.Headers[TaskIdHeader] = result.Id;
        return (new OpenAiCall(http, request, result.Task!, options.OpenAi), null);
    }

    /// <summary>The TaskManager headers an OpenAI request may carry: a priority and a timeout, each checked.</summary>
    private static bool TryReadHeaders(HttpRequest request, out OpenAiHeaders headers, out IResult? fault)
    {
        headers = default;
        fault = null;
        int? priority = null, timeout = null;
        if (!TryWholeNumber(request, PriorityHeader, TaskLimits.MinPriority, TaskLimits.MaxPriority, ref priority, ref fault)
            || !TryWholeNumber(request, TimeoutHeader, TaskLimits.MinTimeoutSeconds, TaskLimits.MaxTimeoutSeconds, ref timeout, ref fault))
        {
            return false;
        }
        headers = new OpenAiHeaders(priority, timeout);
        return true;
    }

    private static bool TryWholeNumber(HttpRequest request, string header, int min, int max, ref int? value, ref IResult? fault)
    {
        if (!request.Headers.TryGetValue(header, out var values))
        {
            return true;
        }
        if (values.Count == 1 && values[0] is { Length: >= 1 and <= 9 } text && text.All(char.IsAsciiDigit)
            && int.Parse(text, CultureInfo.InvariantCulture) is var number && number >= min && number <= max)
        {
            value = number;
            return true;
        }
        fault = OpenAiErrors.Invalid(header, $"{header} must be one whole number from {min} to {max} (got '{values}').");
        return false;
    }
}

/// <summary>
/// One OpenAI request once its task is stored: the task, and waiting for it as the request's
/// client waits. A client that goes away before its answer cancels the task
/// (<c>TaskManager:OpenAi:CancelOnDisconnect</c>), and so does an answer given up on after the
/// task's timeout.
/// </summary>
internal sealed class OpenAiCall(HttpContext http, OpenAiRequest request, TaskRecord task, OpenAiOptions options)
{
    private readonly long started = http.RequestServices.GetRequiredService<TimeProvider>().GetTimestamp();

    public HttpContext Http => http;

    public OpenAiRequest Request => request;

    public string Id => task.Id;

    /// <summary>The model the answer names: the one asked for, or <c>default</c>.</summary>
    public string Model => request.Task.Model ?? "default";

    /// <summary>When the task was made, in Unix seconds: OpenAI's <c>created</c>.</summary>
    public long Created => task.CreatedAt.ToUnixTimeSeconds();

    public ITaskInspector Inspector => http.RequestServices.GetRequiredService<ITaskInspector>();

    /// <summary>How long the answer waits for the task: its timeout, counted from its submission.</summary>
    public TimeSpan Left => TimeSpan.FromSeconds(task.TimeoutSeconds) - http.RequestServices.GetRequiredService<TimeProvider>().GetElapsedTime(started);

    /// <summary>
    /// The task once final, or as it is when its time is up (or the API stops); null when it was
    /// deleted meanwhile or the client went away (then the task is canceled).
    /// </summary>
    public async Task<TaskRecord?> UntilFinalAsync()
    {
        try
        {
            return await PreferWait.UntilFinalAsync(task.Id, Left, http);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            await CancelAsync();
            return null;
        }
    }

    /// <summary>Cancels the task whose answer nobody will receive, unless the setting keeps it.</summary>
    public async Task CancelAsync()
    {
        if (options.CancelOnDisconnect)
        {
            await http.RequestServices.GetRequiredService<ITaskQueue>().CancelAsync(task.Id, http.User.Tenant());
        }
    }

    /// <summary>The error that stands for a task that did not succeed (or is not final yet), in OpenAI's terms.</summary>
    public OpenAiErrors.Body Failure(TaskRecord? ended, out int status)
    {
        if (ended is null)
        {
            status = StatusCodes.Status500InternalServerError;
            return new(Where($"Task {task.Id} was deleted before it ended."), OpenAiErrors.ServerError, null, "task_deleted");
        }
        if (!TaskState.IsFinal(ended.Status))
        {
            status = StatusCodes.Status504GatewayTimeout;
            return new(Where($"Task {task.Id} is still {ended.Status} after its timeout of {ended.TimeoutSeconds} s."), OpenAiErrors.ServerError, null, "timeout");
        }
        string? code = null, message = null;
        if (ended.ErrorJson is { } error)
        {
            using var document = JsonDocument.Parse(error);
            code = document.RootElement.TryGetProperty("code", out var c) ? c.GetString() : null;
            message = document.RootElement.TryGetProperty("message", out var m) ? m.GetString() : null;
        }
        status = ended.Status == TaskState.TimedOut ? StatusCodes.Status504GatewayTimeout : StatusCodes.Status500InternalServerError;
        return new(Where($"Task {task.Id} ended {ended.Status}" + (message is null ? "." : $": {message}")), OpenAiErrors.ServerError, null,
            code ?? ended.Status);
    }

    /// <summary>The answer for a task that did not succeed; a task given up on after its timeout is canceled.</summary>
    public async Task<IResult> FailedAsync(TaskRecord? ended)
    {
        var error = Failure(ended, out var status);
        if (ended is not null && !TaskState.IsFinal(ended.Status) && Left <= TimeSpan.Zero)
        {
            await CancelAsync();
        }
        return OpenAiErrors.Error(status, error.Message, code: error.Code);
    }

    private string Where(string what) => $"{what} Its events: {TaskLinks.Of(http.Request).For(task.Id).Events}.";
}
