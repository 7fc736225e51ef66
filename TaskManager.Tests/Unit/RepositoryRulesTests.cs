using System.Text.RegularExpressions;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Unit;

/// <summary>
/// The house rules of the repository, read from its files: small files, one folder that talks to
/// Redis, folders that depend only on what they should, a README a newcomer can read, an
/// architecture document that names what the code holds, and nothing that points outside the
/// repository.
/// </summary>
[Trait("Category", "Unit")]
public sealed partial class RepositoryRulesTests
{
    private static readonly string Api = Path.Combine(Repository.Root, "TaskManager.Api");

    private static IEnumerable<string> ApiSources(params string[] extensions) =>
        Directory.EnumerateFiles(Api, "*", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && extensions.Contains(Path.GetExtension(f)));

    private static string Relative(string path) => Path.GetRelativePath(Repository.Root, path);

    [Fact]
    public void NoSourceFileOfTheApi_IsOver400Lines()
    {
        var long_ = ApiSources(".cs", ".lua").Select(f => (File: Relative(f), Lines: File.ReadLines(f).Count())).Where(f => f.Lines > 400);

        Assert.Empty(long_);
    }

    [Fact]
    public void OnlyStorage_UsesTheRedisClient()
    {
        var users = ApiSources(".cs")
            .Where(f => RedisClient().IsMatch(File.ReadAllText(f)))
            .Select(Relative)
            .Where(f => !f.StartsWith(Path.Combine("TaskManager.Api", "Storage"), StringComparison.Ordinal));

        Assert.Empty(users);
    }

    [Theory]
    [InlineData("Domain", new[] { "Storage", "Coordination", "Endpoints", "Scheduling", "Security", "Observability", "Webhooks" })]
    [InlineData("Storage", new[] { "Coordination", "Endpoints", "Scheduling", "Security", "Observability", "Webhooks" })]
    [InlineData("Coordination", new[] { "Storage", "Endpoints", "Scheduling", "Security", "Webhooks" })]
    [InlineData("Endpoints", new[] { "Storage", "Scheduling", "Webhooks" })]
    [InlineData("Scheduling", new[] { "Storage", "Coordination", "Endpoints", "Security" })]
    [InlineData("Observability", new[] { "Storage", "Coordination", "Endpoints", "Scheduling", "Security", "Webhooks" })]
    [InlineData("Security", new[] { "Storage", "Coordination", "Endpoints", "Scheduling", "Observability", "Webhooks" })]
    [InlineData("Webhooks", new[] { "Storage", "Coordination", "Scheduling", "Security" })]
    public void AFolder_UsesNoneOfTheFoldersItMustNotDependOn(string folder, string[] forbidden)
    {
        var uses = Directory.EnumerateFiles(Path.Combine(Api, folder), "*.cs", SearchOption.AllDirectories)
            .SelectMany(f => forbidden.Where(other => Regex.IsMatch(File.ReadAllText(f), $@"\bTaskManager\.Api\.{other}\b"))
                .Select(other => $"{Relative(f)} uses {other}"));

        Assert.Empty(uses);
    }

    [Fact]
    public void TheArchitectureDocument_NamesEveryFolderOfTheApi_AndEveryClassOfStorageAndCoordination()
    {
        var document = File.ReadAllText(Path.Combine(Repository.Root, "docs", "architecture.md"));
        var folders = Directory.EnumerateDirectories(Api).Select(Path.GetFileName)
            .Where(d => d is not ("bin" or "obj" or "Properties")).ToArray();
        var classes = new[] { "Storage", "Coordination" }
            .SelectMany(folder => Directory.EnumerateFiles(Path.Combine(Api, folder), "*.cs"))
            .Select(Path.GetFileNameWithoutExtension)
            .Where(name => name is not ("StorageSetup" or "CoordinationSetup" or "RedisStore" or "RedisRecords" or "TaskValues"));
        var sharedLua = Directory.EnumerateFiles(Path.Combine(Api, "Storage", "Scripts", "lib"), "*.lua").Select(Path.GetFileName);

        Assert.All(folders, folder => Assert.Contains($"`{folder}/`", document, StringComparison.Ordinal));
        Assert.All(classes, name => Assert.Contains($"`{name}`", document, StringComparison.Ordinal));
        Assert.All(sharedLua, file => Assert.Contains($"`{file}`", document, StringComparison.Ordinal));
    }

    [Fact]
    public void TheReadme_IsUnder25KB_AndSaysHowToRunTheApplicationAndTheTests()
    {
        var readme = Path.Combine(Repository.Root, "README.md");
        var text = File.ReadAllText(readme);

        Assert.True(new FileInfo(readme).Length < 25 * 1024, $"README.md is {new FileInfo(readme).Length} bytes.");
        Assert.Contains("dotnet run --project TaskManager.AppHost", text, StringComparison.Ordinal);
        Assert.Contains("dotnet test", text, StringComparison.Ordinal);
    }

    [Fact]
    public void NoFileOfTheRepository_PointsOutsideIt()
    {
        var outside = Directory.EnumerateFiles(Repository.Root, "*", SearchOption.AllDirectories)
            .Select(Relative)
            .Where(f => !Regex.IsMatch(f, @"(^|/)(\.git|bin|obj|node_modules|\.logs|\.data)/") && Path.GetExtension(f) is
                ".cs" or ".md" or ".py" or ".lua" or ".json" or ".props" or ".csproj" or ".mjs" or ".sh" or ".yml" or "")
            .Where(f => File.ReadAllText(Path.Combine(Repository.Root, f)).Contains(OutsideFolder, StringComparison.Ordinal));

        Assert.Empty(outside);
    }

    /// <summary>The folder beside the repository that a clone does not have (spelt so that this file does not name it).</summary>
    private static readonly string OutsideFolder = string.Join('/', "..", "shared");

    [GeneratedRegex(@"\b(StackExchange\.Redis|Hangfire\.Redis)\b")]
    private static partial Regex RedisClient();
}
