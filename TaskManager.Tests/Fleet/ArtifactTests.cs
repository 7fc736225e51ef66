using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Fleet;

/// <summary>Binary outputs from a real worker: an image and a WAV, downloaded as a client would.</summary>
[Trait("Category", "Fleet")]
public sealed class ArtifactTests : IClassFixture<FleetFixture>
{
    private readonly FleetFixture fleet;

    public ArtifactTests(FleetFixture fleet)
    {
        this.fleet = fleet;
        if (fleet.Workers.Count == 0)
        {
            fleet.StartWorker("artist", capacity: 2);
        }
    }

    [Fact]
    public async Task SdTask_ProducesPngArtifacts_ThatDownloadWithTheirTypeAndLength()
    {
        var id = await fleet.SubmitAsync("""{"type":"sd","input":{"prompt":"two boats","width":128,"height":128,"num_images":2}}""");
        var task = await fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed", TimeSpan.FromSeconds(60));
        Assert.Equal("succeeded", task.GetProperty("status").GetString());

        var images = task.GetProperty("output").GetProperty("images").EnumerateArray().ToArray();
        Assert.Equal(2, images.Length);
        foreach (var image in images)
        {
            var bytes = await DownloadAsync(image.GetProperty("url").GetString()!, "image/png", image.GetProperty("bytes").GetInt64());
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        }
    }

    [Fact]
    public async Task TtsTask_ProducesAWavArtifact_ThatDownloadsWithItsTypeAndLength()
    {
        var id = await fleet.SubmitAsync("""{"type":"tts","input":{"text":"Hello from TaskManager."}}""");
        var task = await fleet.WaitForStatusAsync(id, s => s is "succeeded" or "failed", TimeSpan.FromSeconds(60));
        Assert.Equal("succeeded", task.GetProperty("status").GetString());

        var audio = task.GetProperty("output").GetProperty("audio");
        var bytes = await DownloadAsync(audio.GetProperty("url").GetString()!, "audio/wav", audio.GetProperty("bytes").GetInt64());
        Assert.Equal("RIFF"u8.ToArray(), bytes[..4]);
        Assert.Equal("WAVE"u8.ToArray(), bytes[8..12]);
    }

    private async Task<byte[]> DownloadAsync(string url, string contentType, long length)
    {
        Assert.StartsWith("/api/tasks/", url);
        var response = await fleet.Client.GetAsync(url);
        response.EnsureSuccessStatusCode();
        Assert.Equal(contentType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(length, response.Content.Headers.ContentLength);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(length, bytes.Length);
        return bytes;
    }
}
