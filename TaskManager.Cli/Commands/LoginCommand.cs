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
            var connection = new Connection(Profiles.ParseUrl(context.Value(url)!), context.Value(key));
            using var api = new ApiClient(connection);
            // Who the key is: a wrong key or URL is refused here rather than on first use.
            var me = JsonDocument.Parse(await api.SendAsync(HttpMethod.Get, "api/me", cancel: cancel)).RootElement;
            var (role, tenant) = (me.GetProperty("role").GetString() ?? "", me.GetProperty("tenant").GetString() ?? "");
            var name = context.Profile ?? Profiles.DefaultName;
            var path = Profiles.Save(name, connection.Url, connection.Key!, context.Value(makeDefault));
            if (context.Json)
            {
                Output.Json(JsonSerializer.Serialize(new Dictionary<string, string>
                {
                    ["profile"] = name,
                    ["url"] = connection.Url.AbsoluteUri,
                    ["config"] = path,
                    ["role"] = role,
                    ["tenant"] = tenant,
                }));
            }
            else
            {
                var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
                var shown = home.Length > 0 && path.StartsWith(home + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? "~" + path[home.Length..] : path;
                var who = role == "admin" ? "an admin key" : $"a client key of the tenant {tenant}";
                Output.Out.MarkupLineInterpolated($"Profile [bold]{name}[/] ({connection.Url}, {who}) saved in {shown}");
            }
            return ExitCodes.Done;
        });
        yield return login;
    }
}
