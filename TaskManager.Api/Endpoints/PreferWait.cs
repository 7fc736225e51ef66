using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Primitives;
using Microsoft.OpenApi;
using TaskManager.Api.Coordination;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// <c>Prefer: wait=N</c> (RFC 7240) on <c>POST /api/tasks</c> and <c>GET /api/tasks/{id}</c>: the
/// answer comes when the task is final (200 with it) or after N seconds (the endpoint's usual
/// answer, with the task as it then is), with <c>Preference-Applied: wait=N</c>. A waiting request
/// holds no thread and polls nothing: it waits on the task's event channel, as the event stream
/// does, and reads the task's status once per event. A request without <c>Prefer</c> costs
/// a header lookup more, and no Redis call.
/// </summary>
public static class PreferWait
{
    public const string Header = "Prefer";
    public const string AppliedHeader = "Preference-Applied";

    /// <summary>The longest wait a client may ask for, in seconds; 0 means no wait.</summary>
    public const int MaxSeconds = 60;

    /// <summary>Lets the endpoint wait as its request prefers (see the class).</summary>
    public static RouteHandlerBuilder WithPreferWait(this RouteHandlerBuilder endpoint) => endpoint
        .AddEndpointFilter(FilterAsync)
        .Produces<TaskDto>(StatusCodes.Status200OK)
        .AddOpenApiOperationTransformer((operation, _, _) =>
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = Header,
                In = ParameterLocation.Header,
                Description = $"wait=N (N from 0 to {MaxSeconds}): answer when the task is final (200 with it) or after N seconds " +
                    "(the usual answer), with Preference-Applied: wait=N. Other preferences are ignored.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String },
            });
            return Task.CompletedTask;
        });

    // Not async itself: without the header the request goes on to the endpoint as if there were no filter.
    private static ValueTask<object?> FilterAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next) =>
        invocation.HttpContext.Request.Headers.TryGetValue(Header, out var prefer) ? AsPreferredAsync(invocation, next, prefer) : next(invocation);

    private static async ValueTask<object?> AsPreferredAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next, StringValues prefer)
    {
        var http = invocation.HttpContext;
        if (HttpMethods.IsGet(http.Request.Method))
        {
            // The answer to a GET depends on this header: a cache must not give it to another.
            http.Response.Headers.Append("Vary", Header);
        }
        if (!TryParse(prefer, out var seconds, out var error))
        {
            return Problems.Invalid(Header, error);
        }
        var result = await next(invocation);
        var answer = result is INestedHttpResult nested ? nested.Result : result;
        (TaskDto? shown, Accepted<TaskDto>? accepted) = answer switch
        {
            Accepted<TaskDto> a => (a.Value, a),
            Ok<TaskDto> o => (o.Value, null),
            _ => (null, null),
        };
        if (seconds == 0 || shown is null)
        {
            return result;
        }

        TaskRecord? task = null;
        if (!TaskState.IsFinal(shown.Status) && (task = await UntilFinalAsync(shown.Id, TimeSpan.FromSeconds(seconds), http)) is null)
        {
            // Deleted meanwhile: the endpoint's own answer stands.
            return result;
        }
        http.Response.Headers[AppliedHeader] = $"wait={seconds}";
        var dto = task is null ? shown : TaskDto.From(task, TaskLinks.Of(http.Request));
        if (accepted is null)
        {
            return TypedResults.Ok(dto);
        }
        if (!TaskState.IsFinal(dto.Status))
        {
            return TypedResults.Accepted(accepted.Location, dto);
        }
        // 200 with the final task; a submission keeps its Location, so a client finds the task the same way either way.
        http.Response.Headers.Location = accepted.Location;
        return TypedResults.Ok(dto);
    }

    /// <summary>
    /// Waits until the task is final or <paramref name="wait"/> has passed (or the API is
    /// stopping), then reads it; null when it no longer exists. Throws OperationCanceledException
    /// when the client goes away. The OpenAI-compatible API waits for its answers with it too.
    /// </summary>
    internal static async Task<TaskRecord?> UntilFinalAsync(string id, TimeSpan wait, HttpContext http)
    {
        var services = http.RequestServices;
        var inspector = services.GetRequiredService<ITaskInspector>();
        var time = services.GetRequiredService<TimeProvider>();
        var started = time.GetTimestamp();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(
            http.RequestAborted, services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);

        // Subscribe, then mark the task followed and read its status: an event in between still
        // signals the subscription, so the wait misses nothing.
        await using var subscription = await services.GetRequiredService<TaskEventSignals>().SubscribeAsync(id);
        var status = await inspector.FollowAsync(id);
        while (status is not null && !TaskState.IsFinal(status))
        {
            var left = wait - time.GetElapsedTime(started);
            try
            {
                if (left <= TimeSpan.Zero || !await subscription.WaitAsync(left, stop.Token))
                {
                    break;
                }
            }
            catch (OperationCanceledException) when (!http.RequestAborted.IsCancellationRequested)
            {
                // The API is stopping: answer with the task as it is rather than hold the shutdown.
                break;
            }
            status = await inspector.FollowAsync(id);
        }
        return status is null ? null : await inspector.GetAsync(id);
    }

    /// <summary>
    /// The <c>wait</c> preference of the <c>Prefer</c> headers (RFC 7240): preferences separated by
    /// commas, in one header or several; names case-insensitive; a value a token or a quoted
    /// string, with optional spaces around <c>=</c>; parameters after <c>;</c> ignored. The first
    /// <c>wait</c> counts and later ones are ignored, as are other preferences. False, with the
    /// reason, when that <c>wait</c> is not a whole number of seconds from 0 to <see cref="MaxSeconds"/>.
    /// No <c>wait</c> at all reads as 0.
    /// </summary>
    internal static bool TryParse(StringValues headers, out int seconds, out string error)
    {
        seconds = 0;
        error = "";
        foreach (var header in headers)
        {
            foreach (var preference in Split(header ?? "", ','))
            {
                var end = preference.IndexOfAny(['=', ';']);
                if (!(end < 0 ? preference : preference[..end]).Trim().Equals("wait", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }
                var value = end >= 0 && preference[end] == '=' ? Unquote(Split(preference[(end + 1)..], ';').First().Trim()) : "";
                if (value.Length is >= 1 and <= 9 && value.All(char.IsAsciiDigit) && int.Parse(value, CultureInfo.InvariantCulture) <= MaxSeconds)
                {
                    seconds = int.Parse(value, CultureInfo.InvariantCulture);
                    return true;
                }
                error = $"wait must be a whole number of seconds from 0 (no wait) to {MaxSeconds}, as in 'Prefer: wait=10'; it is {(value.Length == 0 ? "missing" : $"'{value}'")}.";
                return false;
            }
        }
        return true;
    }

    /// <summary>Splits at each <paramref name="separator"/> outside a quoted string.</summary>
    private static IEnumerable<string> Split(string text, char separator)
    {
        var start = 0;
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            if (quoted && text[i] == '\\')
            {
                i++;
            }
            else if (text[i] == '"')
            {
                quoted = !quoted;
            }
            else if (!quoted && text[i] == separator)
            {
                yield return text[start..i];
                start = i + 1;
            }
        }
        yield return text[start..];
    }

    private static string Unquote(string value)
    {
        if (value.Length < 2 || value[0] != '"' || value[^1] != '"')
        {
            return value;
        }
        var text = new StringBuilder(value.Length);
        for (var i = 1; i < value.Length - 1; i++)
        {
            if (value[i] == '\\' && i + 1 < value.Length - 1)
            {
                i++;
            }
            text.Append(value[i]);
        }
        return text.ToString();
    }
}
