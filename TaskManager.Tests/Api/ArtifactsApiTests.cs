using System.Net;
using System.Net.Http.Headers;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Api;

/// <summary>Artifact upload by a worker and download by a client, over real HTTP.</summary>
[Trait("Category", "Api")]
public sealed class ArtifactsApiTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IAsyncLifetime
{
    private static readonly byte[] Png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3, 4];

    private HttpClient Client => fixture.Api.Client;

    public Task InitializeAsync() => fixture.Redis.FlushAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task UploadedArtifact_DownloadsWithItsContentTypeAndLength()
    {
        var (worker, task, token) = await RunningTaskAsync();

        var upload = await PutAsync(worker, task, "image-0.png", token, Png, "image/png");

        Assert.Equal(HttpStatusCode.Created, upload.StatusCode);
        var body = await upload.JsonAsync();
        Assert.Equal($"/api/tasks/{task}/artifacts/image-0.png", body.GetProperty("url").GetString());
        Assert.Equal(Png.Length, body.GetProperty("bytes").GetInt32());
        var download = await Client.GetAsync(body.GetProperty("url").GetString());
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal("image/png", download.Content.Headers.ContentType?.MediaType);
        Assert.Equal(Png.Length, download.Content.Headers.ContentLength);
        Assert.Equal(Png, await download.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Upload_WithAStaleToken_Is409_AndStoresNothing()
    {
        var (worker, task, token) = await RunningTaskAsync();

        var upload = await PutAsync(worker, task, "a.png", "not-" + token, Png, "image/png");

        Assert.Equal(HttpStatusCode.Conflict, upload.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Client.GetAsync($"/api/tasks/{task}/artifacts/a.png")).StatusCode);
    }

    [Theory]
    [InlineData("..png", "image/png")]
    [InlineData(".hidden", "image/png")]
    [InlineData("a b.png", "image/png")]
    [InlineData("ok.png", "not a media type")]
    public async Task Upload_WithABadNameOrContentType_Is400(string name, string contentType)
    {
        var (worker, task, token) = await RunningTaskAsync();
        var request = new HttpRequestMessage(HttpMethod.Put,
            $"/api/workers/{worker}/tasks/{task}/artifacts/{Uri.EscapeDataString(name)}?lease_token={token}")
        {
            Content = new ByteArrayContent(Png),
        };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);

        var response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task UnknownArtifact_Is404ProblemDetails()
    {
        var task = await (await Client.PostJsonAsync("/api/tasks", """{"type":"sd","input":{"prompt":"x"}}""")).JsonAsync();

        var response = await Client.GetAsync($"/api/tasks/{task.GetProperty("id").GetString()}/artifacts/nothing.png");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    private async Task<(string Worker, string Task, string Token)> RunningTaskAsync()
    {
        var worker = await HotPathTests.RegisterWorkerAsync(Client, ["sd"]);
        var task = await (await Client.PostJsonAsync("/api/tasks", """{"type":"sd","input":{"prompt":"x"}}""")).JsonAsync();
        var leased = (await (await Client.PostAsync($"/api/workers/{worker}/lease?wait_seconds=5", null)).JsonAsync()).GetProperty("tasks")[0];
        return (worker, task.GetProperty("id").GetString()!, leased.GetProperty("lease_token").GetString()!);
    }

    private Task<HttpResponseMessage> PutAsync(string worker, string task, string name, string token, byte[] data, string contentType)
    {
        var content = new ByteArrayContent(data);
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        return Client.PutAsync($"/api/workers/{worker}/tasks/{task}/artifacts/{name}?lease_token={Uri.EscapeDataString(token)}", content);
    }
}
