using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaskManager.Cli;

/// <summary>Where the API is and which key to present: a profile, overridden by the environment.</summary>
public sealed record Connection(Uri Url, string? Key);

/// <summary>
/// The profiles <c>tm login</c> keeps, in <c>$XDG_CONFIG_HOME/taskmanager/config.json</c>
/// (<c>~/.config/taskmanager/config.json</c> when XDG_CONFIG_HOME is not set), readable by its
/// owner only (0600, in a 0700 folder) since it holds keys:
/// <c>{"default_profile": "default", "profiles": {"default": {"url": "...", "key": "..."}}}</c>.
/// <c>TASKMANAGER_URL</c> and <c>TASKMANAGER_API_KEY</c> override the profile's values.
/// </summary>
public static class Profiles
{
    public const string DefaultName = "default";
    public const string UrlVariable = "TASKMANAGER_URL";
    public const string KeyVariable = "TASKMANAGER_API_KEY";

    private const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public static string ConfigPath
    {
        get
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            var root = !string.IsNullOrEmpty(xdg) ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
            return Path.Combine(root, "taskmanager", "config.json");
        }
    }

    /// <summary>The connection to use: the named profile (else the default one), each value overridden by its environment variable.</summary>
    public static Connection Resolve(string? profileName)
    {
        var config = Read();
        var name = profileName ?? config["default_profile"]?.GetValue<string>() ?? DefaultName;
        var profile = config["profiles"]?[name] as JsonObject;
        if (profileName is not null && profile is null)
        {
            throw new UsageException($"There is no profile '{profileName}' in {ConfigPath}; create it with tm login --profile {profileName} --url URL --key KEY.");
        }
        var url = Environment.GetEnvironmentVariable(UrlVariable) is { Length: > 0 } envUrl ? envUrl : profile?["url"]?.GetValue<string>();
        var key = Environment.GetEnvironmentVariable(KeyVariable) is { Length: > 0 } envKey ? envKey : profile?["key"]?.GetValue<string>();
        if (url is null)
        {
            throw new UsageException($"No API to talk to: run tm login --url URL --key KEY, or set {UrlVariable} and {KeyVariable}.");
        }
        return new Connection(ParseUrl(url), key);
    }

    public static Uri ParseUrl(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new UsageException($"'{url}' is not an http(s) URL.");
        }
        // A trailing slash, so that relative paths resolve under a gateway's prefix too.
        return uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");
    }

    /// <summary>Writes a profile (and makes it the default when it is the first or <paramref name="makeDefault"/>); returns the file's path.</summary>
    public static string Save(string name, Uri url, string key, bool makeDefault)
    {
        var config = Read();
        var profiles = config["profiles"] as JsonObject ?? [];
        config["profiles"] = profiles;
        profiles[name] = new JsonObject { ["url"] = url.AbsoluteUri, ["key"] = key };
        if (makeDefault || config["default_profile"] is null)
        {
            config["default_profile"] = name;
        }

        var path = ConfigPath;
        var folder = Path.GetDirectoryName(path)!;
        if (!Directory.Exists(folder))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(folder);
            }
            else
            {
                Directory.CreateDirectory(folder, OwnerOnlyFolder);
            }
        }
        // Written beside it and moved over it, created 0600 from the start: the key is never readable by others, not even for a moment.
        var temporary = path + ".tmp";
        File.Delete(temporary);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnlyFile;
        }
        using (var stream = new FileStream(temporary, options))
        {
            JsonSerializer.Serialize(stream, config, new JsonSerializerOptions { WriteIndented = true });
        }
        File.Move(temporary, path, overwrite: true);
        return path;
    }

    private static JsonObject Read()
    {
        var path = ConfigPath;
        if (!File.Exists(path))
        {
            return [];
        }
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new UsageException($"{path} is not a JSON object; fix or delete it.");
        }
        catch (JsonException ex)
        {
            throw new UsageException($"{path} is not valid JSON ({ex.Message}); fix or delete it.");
        }
    }
}
