using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Endpoints;

/// <summary>
/// The models of the OpenAI-compatible API: those that live (healthy) workers have loaded or
/// declared (<c>TASKMANAGER_MODELS</c>), by the task types those workers serve. A request that
/// names a model no live worker of its type has is answered 404 <c>model_not_found</c> rather than
/// queued for nobody. The fleet is read from the store; a model found is taken on trust for a
/// second (a request is one fleet read less), one not found is always read again.
/// </summary>
public sealed class OpenAiModels(IWorkerRegistry registry, IOptions<TaskManagerOptions> options, TimeProvider time)
{
    public const string Owner = "taskmanager";
    private static readonly TimeSpan Trust = TimeSpan.FromSeconds(1);

    private Snapshot? last;

    /// <summary>A model, the task types of the workers that have it, and when the first of them registered.</summary>
    public sealed record Served(string Id, IReadOnlySet<string> Types, DateTimeOffset Since);

    private sealed record Snapshot(IReadOnlyDictionary<string, Served> Models, long Taken);

    /// <summary>The models live workers have now, by name.</summary>
    public async Task<IReadOnlyDictionary<string, Served>> ReadAsync()
    {
        var now = time.GetUtcNow();
        var types = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        var since = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        foreach (var worker in await registry.ListWorkersAsync(WorkerStatuses.MaxListed))
        {
            if (WorkerStatuses.Of(worker, now, options.Value) != WorkerStatuses.Healthy)
            {
                continue;
            }
            foreach (var model in FleetApi.ModelsOf(worker))
            {
                if (!types.TryGetValue(model, out var served))
                {
                    types[model] = served = new HashSet<string>(StringComparer.Ordinal);
                }
                served.UnionWith(worker.TaskTypes);
                since[model] = since.TryGetValue(model, out var first) && first < worker.RegisteredAt ? first : worker.RegisteredAt;
            }
        }
        var read = types.ToDictionary(m => m.Key, m => new Served(m.Key, m.Value, since[m.Key]), StringComparer.Ordinal);
        last = new Snapshot(read, time.GetTimestamp());
        return read;
    }

    /// <summary>Whether a live worker serving <paramref name="type"/> has <paramref name="model"/>.</summary>
    public async Task<bool> ServesAsync(string type, string model)
    {
        if (last is { } known && time.GetElapsedTime(known.Taken) < Trust && Has(known.Models, type, model))
        {
            return true;
        }
        return Has(await ReadAsync(), type, model);
    }

    private static bool Has(IReadOnlyDictionary<string, Served> models, string type, string model) =>
        models.TryGetValue(model, out var served) && served.Types.Contains(type);

    /// <summary>A model as OpenAI lists one.</summary>
    public sealed record ModelDto(string Id, string Object, long Created, string OwnedBy)
    {
        public static ModelDto From(Served served) => new(served.Id, "model", served.Since.ToUnixTimeSeconds(), Owner);
    }

    public sealed record ModelListDto(string Object, IReadOnlyList<ModelDto> Data);

    internal static async Task<Ok<ModelListDto>> List(OpenAiModels models) =>
        TypedResults.Ok(new ModelListDto("list", (await models.ReadAsync()).Values.OrderBy(m => m.Id, StringComparer.Ordinal).Select(ModelDto.From).ToArray()));

    internal static async Task<Results<Ok<ModelDto>, ProblemHttpResult>> Get(string model, OpenAiModels models) =>
        (await models.ReadAsync()).TryGetValue(model, out var served)
            ? TypedResults.Ok(ModelDto.From(served))
            : OpenAiErrors.Error(StatusCodes.Status404NotFound, $"The model '{model}' does not exist here: no live worker has it loaded or declared.",
                param: "model", code: "model_not_found");
}

/// <summary>The shapes of the OpenAI-compatible API's requests, for the OpenAPI document (the endpoints read the raw JSON).</summary>
public static class OpenAiDocs
{
    public sealed record Message(string Role, string Content);

    public sealed record StreamOptions(bool? IncludeUsage);

    public sealed record ChatRequest(string Model, IReadOnlyList<Message> Messages, int? MaxTokens, int? MaxCompletionTokens, double? Temperature,
        double? TopP, object? Stop, bool? Stream, StreamOptions? StreamOptions, string? User, int? N);

    public sealed record CompletionRequest(string Model, string Prompt, int? MaxTokens, double? Temperature, double? TopP, object? Stop,
        bool? Stream, StreamOptions? StreamOptions, string? User, int? N);

    public sealed record ImageRequest(string Prompt, string? Model, int? N, string? Size, string? ResponseFormat, string? User);

    public sealed record SpeechRequest(string Input, string? Model, string? Voice, string? ResponseFormat, double? Speed);
}
