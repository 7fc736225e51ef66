using Aspire.Hosting;
using Aspire.Hosting.Testing;

namespace TaskManager.Tests.EndToEnd;

/// <summary>AppHost settings that cannot work stop it at once, with a message that says which and why.</summary>
[Trait("Category", "EndToEnd")]
public sealed class AppHostSettingsTests
{
    [Theory]
    [InlineData("ApiReplicas", "0")]
    [InlineData("ApiReplicas", "-1")]
    [InlineData("SchedulerReplicas", "two")]
    [InlineData("SchedulerReplicas", "1.5")]
    public async Task ReplicasThatAreNotAWholeNumberOfOneOrMore_StopTheAppHost_NamingTheSetting(string setting, string value)
    {
        var error = await Assert.ThrowsAsync<DistributedApplicationException>(() =>
            DistributedApplicationTestingBuilder.CreateAsync<Projects.TaskManager_AppHost>(
                ["TaskManager:Containers=false", $"TaskManager:{setting}={value}"]));

        Assert.Equal($"TaskManager:{setting} must be a whole number of 1 or more (how many processes to run), not '{value}'.", error.Message);
    }
}
