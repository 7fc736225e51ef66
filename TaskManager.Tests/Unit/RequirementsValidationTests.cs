using System.Text.Json;
using TaskManager.Api.Domain;

namespace TaskManager.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class RequirementsValidationTests
{
    [Fact]
    public void Requirements_AreReadWithTheirBounds()
    {
        var errors = Validate("""{"gpu_memory_mb":40000,"gpu":"H100"}""", out var request);

        Assert.Empty(errors);
        Assert.Equal(new TaskRequirements(40000, "H100"), request!.Requirements);
    }

    [Theory]
    [InlineData("""{"gpu_memory_mb":0}""", "requirements.gpu_memory_mb")]
    [InlineData("""{"gpu_memory_mb":"lots"}""", "requirements.gpu_memory_mb")]
    [InlineData("""{"gpu":""}""", "requirements.gpu")]
    [InlineData("""{"vram":8000}""", "requirements.vram")]
    [InlineData("""[8000]""", "requirements")]
    public void BadRequirements_AreNamedByPath(string requirements, string field)
    {
        var errors = Validate(requirements, out var request);

        Assert.Null(request);
        Assert.Contains(field, errors.Keys);
    }

    [Fact]
    public void NoRequirements_LeaveThemNull()
    {
        using var document = JsonDocument.Parse("""{"type":"llm","input":{"prompt":"x"}}""");

        Assert.Empty(TaskRequestValidator.Validate(document.RootElement, out var request));
        Assert.Null(request!.Requirements);
    }

    private static Dictionary<string, string[]> Validate(string requirements, out TaskRequest? request)
    {
        using var document = JsonDocument.Parse($$"""{"type":"sd","input":{"prompt":"x"},"requirements":{{requirements}}}""");
        return TaskRequestValidator.Validate(document.RootElement, out request);
    }
}
