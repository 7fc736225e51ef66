using System.CommandLine;
using Spectre.Console;
using System.Text.Json;

namespace TaskManager.Cli.Commands;

/// <summary><c>tm login</c>: checks a URL and key against the API and keeps them as a profile.</summary>
public static class LoginCommand
{
    public static IEnumerable<Command> Build()
    {
        var url = new Option<string>("--url") { Description = "The API's base URL, e.g. http://localhost:8084", Required = true };
        var key = new Option<string>("--key") { Description = "A client key (or an admin key)", Required = true };
        var makeDefault = new Option<bool>("--default") { Description = "Make this profile the default (the first profile always is)" };
        var login = new Command("login", "Check a URL and key against the API and keep them as a profile (--profile NAME, else 'default')")
        {
            url, key, makeDefault,
        };
        login.WithAction(async (context, cancel) =>
        {
            var connection = new Connection(Profiles.ParseUrl(context.Value(url)!), context.Value(key), "login");
            using var api = new ApiClient(connection);
            // Any call that needs a key: a wrong key or URL is refused here rather than on first use.
            await api.SendAsync(HttpMethod.Get, "api/tasks?limit=1", cancel: cancel);
            var name = context.Profile ?? Profiles.DefaultName;
            var path = Profiles.Save(name, connection.Url, connection.Key!, context.Value(makeDefault));
            if (context.Json)
            {
                Output.Json(JsonSerializer.Serialize(new Dictionary<string, string>
                {
                    ["profile"] = name,
                    ["url"] = connection.Url.AbsoluteUri,
                    ["config"] = path,
                }));
            }
            else
            {
                var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
                var shown = home.Length > 0 && path.StartsWith(home + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? "~" + path[home.Length..] : path;
                Output.Out.MarkupLineInterpolated($"Profile [bold]{name}[/] ({connection.Url}) saved in {shown}");
            }
            return ExitCodes.Done;
        });
        yield return login;
    }
}
