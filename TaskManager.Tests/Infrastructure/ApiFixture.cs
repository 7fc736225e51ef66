namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// One real API process on its own redis-server, shared by a test class; each test starts from an
/// empty Redis (FLUSHALL leaves the API's connection and its pub/sub subscription in place).
/// </summary>
public sealed class ApiFixture : IAsyncLifetime
{
    public RedisServer Redis { get; } = new();

    public ApiProcess Api { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Api = await ApiProcess.StartAsync(Redis);
    }

    public async Task DisposeAsync()
    {
        if (Api is not null)
        {
            await Api.DisposeAsync();
        }
        await Redis.DisposeAsync();
    }
}
