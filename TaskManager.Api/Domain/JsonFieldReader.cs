using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskManager.Api.Domain;

/// <summary>
/// Reads typed, bounded fields out of a JSON object and collects one message per bad field,
/// keyed by its path (<c>input.max_tokens</c>), the way a 400 ValidationProblem reports them.
/// </summary>
internal sealed class JsonFieldReader(Dictionary<string, List<string>> errors)
{
    public bool HasErrors => errors.Count > 0;

    public void Error(string path, string message)
    {
        if (!errors.TryGetValue(path, out var list))
        {
            errors[path] = list = [];
        }
        list.Add(message);
    }

    /// <summary>Rejects properties that the schema does not know, so a typo is not silently ignored.</summary>
    public void RejectUnknown(JsonElement obj, string prefix, IReadOnlySet<string> known)
    {
        foreach (var property in obj.EnumerateObject())
        {
            if (!known.Contains(property.Name))
            {
                Error(Path(prefix, property.Name), "is not a known field.");
            }
        }
    }

    public string? String(JsonElement obj, string prefix, string name, int minLength, int maxLength, bool required = false)
    {
        if (!TryGet(obj, prefix, name, required, out var value))
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.String)
        {
            Error(Path(prefix, name), "must be a string.");
            return null;
        }
        var text = value.GetString()!;
        if (text.Length < minLength || text.Length > maxLength)
        {
            Error(Path(prefix, name), minLength > 0
                ? $"must be {minLength} to {maxLength} characters long (got {text.Length})."
                : $"must be at most {maxLength} characters long (got {text.Length}).");
            return null;
        }
        return text;
    }

    public long? Integer(JsonElement obj, string prefix, string name, long min, long max, bool required = false)
    {
        if (!TryGet(obj, prefix, name, required, out var value))
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
        {
            Error(Path(prefix, name), value.ValueKind == JsonValueKind.Number
                ? $"must be a whole number from {min} to {max}."
                : "must be an integer.");
            return null;
        }
        if (number < min || number > max)
        {
            Error(Path(prefix, name), $"must be from {min} to {max} (got {number}).");
            return null;
        }
        return number;
    }

    public double? Number(JsonElement obj, string prefix, string name, double min, double max)
    {
        if (!TryGet(obj, prefix, name, required: false, out var value))
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || !double.IsFinite(number))
        {
            Error(Path(prefix, name), "must be a number.");
            return null;
        }
        if (number < min || number > max)
        {
            Error(Path(prefix, name), $"must be from {min} to {max} (got {number}).");
            return null;
        }
        return number;
    }

    public bool? Boolean(JsonElement obj, string prefix, string name)
    {
        if (!TryGet(obj, prefix, name, required: false, out var value))
        {
            return null;
        }
        if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            Error(Path(prefix, name), "must be true or false.");
            return null;
        }
        return value.GetBoolean();
    }

    public bool TryGet(JsonElement obj, string prefix, string name, bool required, out JsonElement value)
    {
        if (obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null)
        {
            return true;
        }
        if (required)
        {
            Error(Path(prefix, name), "is required.");
        }
        return false;
    }

    public static string Path(string prefix, string name) => prefix.Length == 0 ? name : $"{prefix}.{name}";

    /// <summary>Sets a node only when the value is present, so the stored input holds what was given plus defaults.</summary>
    public static void Put(JsonObject target, string name, JsonNode? value)
    {
        if (value is not null)
        {
            target[name] = value;
        }
    }
}
