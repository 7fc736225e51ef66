using System.Diagnostics;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A real reverse proxy in front of the API, as a platform's gateway: it serves /api/tasks and
/// /api/health at <see cref="Root"/>, and the same API mounted under /inference at
/// <see cref="Mounted"/>.
/// </summary>
public interface ITestGateway<TSelf> : IAsyncDisposable
    where TSelf : ITestGateway<TSelf>
{
    /// <summary>The path the gateway mounts the API under at <see cref="Mounted"/>.</summary>
    public const string Prefix = "/inference";

    /// <summary>Where the gateway serves the API's own paths (ends with a slash).</summary>
    Uri Root { get; }

    /// <summary>Where it serves them under <see cref="Prefix"/> (ends with a slash).</summary>
    Uri Mounted { get; }

    /// <summary>What the gateway's processes printed, for failure messages.</summary>
    string Output { get; }

    static abstract Task<TSelf> StartAsync(Uri api);
}

/// <summary>
/// nginx (Debian's nginx-light) running the site configuration the repository documents,
/// docs/gateway/nginx.conf, inside a main configuration that keeps every file in a temporary folder.
/// </summary>
public sealed class NginxGateway : ITestGateway<NginxGateway>
{
    private readonly ChildProcess process;
    private readonly string folder;

    private NginxGateway(ChildProcess process, string folder, int port)
    {
        this.process = process;
        this.folder = folder;
        Root = new Uri($"http://127.0.0.1:{port}/");
        Mounted = new Uri($"http://127.0.0.1:{port}{ITestGateway<NginxGateway>.Prefix}/");
    }

    public Uri Root { get; }

    public Uri Mounted { get; }

    public string Output => process.Output + ReadOrEmpty(Path.Combine(folder, "error.log"));

    public static async Task<NginxGateway> StartAsync(Uri api)
    {
        var nginx = new[] { "/usr/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("nginx is not installed (Debian: apt-get install nginx-light).");
        var folder = Directory.CreateTempSubdirectory("taskmanager-nginx-").FullName;
        var port = RedisServer.FreePort();

        // The documented site, with only its two marked addresses replaced.
        var site = File.ReadAllText(Path.Combine(Repository.Root, "docs", "gateway", "nginx.conf"));
        site = ReplaceOnce(site, "server taskmanager:8084;", $"server 127.0.0.1:{api.Port};");
        site = ReplaceOnce(site, "listen 8080;", $"listen 127.0.0.1:{port};");
        File.WriteAllText(Path.Combine(folder, "taskmanager.conf"), site);
        // As root, nginx's workers would run as nobody, who cannot write the temporary folder.
        var user = Environment.UserName == "root" ? "user root;" : "";
        File.WriteAllText(Path.Combine(folder, "nginx.conf"), string.Join('\n',
            "daemon off;", "worker_processes 1;", user, $"pid {folder}/nginx.pid;", $"error_log {folder}/error.log warn;",
            "events { worker_connections 256; }",
            "http {",
            "  access_log off;",
            $"  client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;",
            $"  fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi; scgi_temp_path {folder}/scgi;",
            $"  include {folder}/taskmanager.conf;",
            "}"));

        var start = new ProcessStartInfo(nginx) { ArgumentList = { "-p", folder, "-e", $"{folder}/error.log", "-c", $"{folder}/nginx.conf" } };
        var gateway = new NginxGateway(ChildProcess.Start(start, "nginx"), folder, port);
        await gateway.process.WaitUntilAnswersAsync(new Uri(gateway.Root, "api/health"), () => gateway.Output);
        return gateway;
    }

    public async ValueTask DisposeAsync()
    {
        await process.DisposeAsync();
        TempFolder.Delete(folder);
    }

    private static string ReplaceOnce(string text, string what, string with)
    {
        var at = text.IndexOf(what, StringComparison.Ordinal);
        if (at < 0 || text.IndexOf(what, at + what.Length, StringComparison.Ordinal) >= 0)
        {
            throw new InvalidOperationException($"docs/gateway/nginx.conf must contain '{what}' exactly once: the tests replace it.");
        }
        return string.Concat(text.AsSpan(0, at), with, text.AsSpan(at + what.Length));
    }

    private static string ReadOrEmpty(string path) => File.Exists(path) ? File.ReadAllText(path) : "";
}

/// <summary>
/// The repository's YARP gateway (TaskManager.Gateway) run alone, as the AppHost's gateway
/// resource: one process at the root, and one with Gateway:PathBase set to the prefix.
/// </summary>
public sealed class YarpGateway : ITestGateway<YarpGateway>
{
    private readonly ChildProcess root;
    private readonly ChildProcess mounted;

    private YarpGateway(ChildProcess root, int rootPort, ChildProcess mounted, int mountedPort)
    {
        this.root = root;
        this.mounted = mounted;
        Root = new Uri($"http://127.0.0.1:{rootPort}/");
        Mounted = new Uri($"http://127.0.0.1:{mountedPort}{ITestGateway<YarpGateway>.Prefix}/");
    }

    public Uri Root { get; }

    public Uri Mounted { get; }

    public string Output => root.Output + mounted.Output;

    public static async Task<YarpGateway> StartAsync(Uri api)
    {
        var (rootProcess, rootPort) = Start(api, pathBase: null);
        var (mountedProcess, mountedPort) = Start(api, ITestGateway<YarpGateway>.Prefix);
        var gateway = new YarpGateway(rootProcess, rootPort, mountedProcess, mountedPort);
        try
        {
            await rootProcess.WaitUntilAnswersAsync(new Uri(gateway.Root, "api/health"), () => gateway.Output);
            await mountedProcess.WaitUntilAnswersAsync(new Uri(gateway.Mounted, "api/health"), () => gateway.Output);
        }
        catch
        {
            await gateway.DisposeAsync();
            throw;
        }
        return gateway;
    }

    public async ValueTask DisposeAsync()
    {
        await root.DisposeAsync();
        await mounted.DisposeAsync();
    }

    private static (ChildProcess Process, int Port) Start(Uri api, string? pathBase)
    {
        var port = RedisServer.FreePort();
        var start = new ProcessStartInfo("dotnet") { ArgumentList = { BuildOutput.Of("TaskManager.Gateway") } };
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        // Service discovery, as the AppHost's reference to the api sets it.
        start.Environment["services__api__http__0"] = api.ToString().TrimEnd('/');
        if (pathBase is not null)
        {
            start.Environment["Gateway__PathBase"] = pathBase;
        }
        return (ChildProcess.Start(start, "gateway"), port);
    }
}

/// <summary>Where a project of the repository has its build output, of the tests' configuration.</summary>
public static class BuildOutput
{
    /// <summary>The tests' own build configuration, which the projects they run were built in too.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";

    public static string Of(string project)
    {
        var path = Path.Combine(Repository.Root, project, "bin", Configuration, "net10.0", project + ".dll");
        return File.Exists(path) ? path : throw new InvalidOperationException($"Build {project} first: {path} is missing.");
    }
}
