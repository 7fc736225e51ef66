namespace TaskManager.Api.Endpoints;

/// <summary>A bound argument that knows whether it is valid; <see cref="ValidationFilter"/> checks it.</summary>
public interface IValidatable
{
    /// <summary>Problems by field path; empty when valid.</summary>
    IDictionary<string, string[]> Validate();
}

/// <summary>
/// Runs before every handler of a group: any argument that is <see cref="IValidatable"/> and
/// invalid ends the request with a 400 ValidationProblem naming each bad field, so handlers only
/// ever see valid input.
/// </summary>
public sealed class ValidationFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        foreach (var argument in context.Arguments)
        {
            if (argument is IValidatable validatable && validatable.Validate() is { Count: > 0 } errors)
            {
                return TypedResults.ValidationProblem(errors, title: "The request is not valid.");
            }
        }
        return await next(context);
    }
}
