using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;

namespace TaskManager.Tests.EndToEnd;

/// <summary>
/// The whole application as <c>dotnet run --project TaskManager.AppHost</c> starts it, without a
/// container runtime: a local redis-server, the API, the scheduler and the Python worker, each a
/// real process, the gateway in front of the API and the web console. Started once for the tests that share it.
/// </summary>
public sealed class AppHostFixture : IAsyncLifetime
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(3);
    private string? dataDirectory;

    public DistributedApplication App { get; private set; } = null!;

    public HttpClient Api { get; private set; } = null!;

    /// <summary>A client of the gateway resource's URL, presenting the client key.</summary>
    public HttpClient Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        dataDirectory = Directory.CreateTempSubdirectory("taskmanager-apphost-").FullName;
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.TaskManager_AppHost>(
        [
            "TaskManager:Containers=false",
            $"TaskManager:RedisDataDirectory={dataDirectory}",
            "TaskManager:WorkerCapacity=2",
            // The platform's gateway in front of the API, as --TaskManager:Gateway=true adds it.
            "TaskManager:Gateway=true",
            // The AppHost generates these; fixed here so that the tests can present them.
            $"Parameters:api-key={Infrastructure.Credentials.ClientKey}",
            $"Parameters:admin-key={Infrastructure.Credentials.AdminKey}",
            $"Parameters:worker-token={Infrastructure.Credentials.WorkerToken}",
        ]);
        App = await builder.BuildAsync();
        using var start = new CancellationTokenSource(StartTimeout);
        await App.StartAsync(start.Token);
        foreach (var resource in (string[])["redis", "api", "scheduler", "gateway", "web"])
        {
            await App.ResourceNotifications.WaitForResourceHealthyAsync(resource, start.Token);
        }
        await App.ResourceNotifications.WaitForResourceAsync("worker", KnownResourceStates.Running, start.Token);
        var endpoint = App.GetEndpoint("api", "http");
        Api = new HttpClient(new Infrastructure.PartyKeyHandler(new HttpClientHandler()))
        {
            BaseAddress = endpoint,
            Timeout = TimeSpan.FromSeconds(60),
        };
        Gateway = new HttpClient(new Infrastructure.PartyKeyHandler(new HttpClientHandler()))
        {
            BaseAddress = App.GetEndpoint("gateway", "http"),
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public async Task DisposeAsync()
    {
        Api?.Dispose();
        Gateway?.Dispose();
        if (App is not null)
        {
            await App.DisposeAsync();
        }
        Infrastructure.TempFolder.Delete(dataDirectory);
    }
}
