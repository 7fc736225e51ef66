using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using TaskManager.Api;
using TaskManager.Api.Webhooks;

namespace TaskManager.Tests.Unit;

/// <summary>
/// Which addresses a webhook may not reach without <c>AllowPrivateTargets</c>, and the webhook
/// settings: bound from their variables, and checked as the rest of the settings are.
/// </summary>
[Trait("Category", "Unit")]
public sealed class WebhookTargetsTests
{
    [Theory]
    [InlineData("127.0.0.1", "a loopback address")]
    [InlineData("127.255.0.9", "a loopback address")]
    [InlineData("::1", "a loopback address")]
    [InlineData("10.1.2.3", "a private address")]
    [InlineData("172.16.0.1", "a private address")]
    [InlineData("172.31.255.255", "a private address")]
    [InlineData("192.168.1.1", "a private address")]
    [InlineData("fc00::1", "a private (unique local) address")]
    [InlineData("fdff:1234::9", "a private (unique local) address")]
    [InlineData("169.254.10.20", "a link-local address")]
    [InlineData("fe80::1", "a link-local address")]
    [InlineData("febf::1", "a link-local address")]
    [InlineData("0.0.0.0", "an unspecified address")]
    [InlineData("0.1.2.3", "an unspecified address")]
    [InlineData("::", "an unspecified address")]
    [InlineData("100.64.0.1", "a shared (CGNAT) address")]
    [InlineData("100.127.255.254", "a shared (CGNAT) address")]
    [InlineData("224.0.0.1", "a multicast address")]
    [InlineData("239.255.255.250", "a multicast address")]
    [InlineData("ff02::1", "a multicast address")]
    [InlineData("fec0::1", "a site-local address")]
    [InlineData("255.255.255.255", "a reserved address")]
    [InlineData("169.254.169.254", "a cloud metadata address")]
    [InlineData("fd00:ec2::254", "a cloud metadata address")]
    // IPv4 written as IPv6: mapped, the older compatible form, NAT64's well-known prefix.
    [InlineData("::ffff:127.0.0.1", "a loopback address")]
    [InlineData("::ffff:10.0.0.1", "a private address")]
    [InlineData("::ffff:169.254.169.254", "a cloud metadata address")]
    [InlineData("::ffff:100.64.0.1", "a shared (CGNAT) address")]
    [InlineData("::127.0.0.1", "a loopback address")]
    [InlineData("64:ff9b::a9fe:a9fe", "a cloud metadata address")]
    public void AnAddressIntoTheDeploymentsNetwork_IsForbidden_Saying(string address, string kind)
    {
        Assert.Equal(kind, WebhookTargets.Forbidden(IPAddress.Parse(address)));
    }

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("172.15.255.255")]
    [InlineData("172.32.0.1")]
    [InlineData("100.63.255.255")]
    [InlineData("100.128.0.1")]
    [InlineData("169.255.0.1")]
    [InlineData("223.255.255.255")]
    [InlineData("2001:4860:4860::8888")]
    [InlineData("::ffff:8.8.8.8")]
    [InlineData("64:ff9b::808:808")]
    public void APublicAddress_IsAllowed(string address)
    {
        Assert.Null(WebhookTargets.Forbidden(IPAddress.Parse(address)));
    }

    [Fact]
    public void TheRefusal_NamesTheHost_TheAddress_Why_AndTheSettingThatAllowsIt()
    {
        Assert.Equal(
            "refused: webhook.example resolves to 127.0.0.1, a loopback address; set TaskManager__Webhooks__AllowPrivateTargets=true to allow private targets",
            WebhookTargets.Refusal("webhook.example", IPAddress.Loopback, "a loopback address"));
        Assert.Equal(
            "refused: ::1 is a loopback address; set TaskManager__Webhooks__AllowPrivateTargets=true to allow private targets",
            WebhookTargets.Refusal("[::1]", IPAddress.IPv6Loopback, "a loopback address"));
    }

    [Fact]
    public void TheWebhookSettings_AreBoundFromTheirVariables_WithTheirDefaults()
    {
        Assert.Equal(10, new TaskManagerOptions().Webhooks.TimeoutSeconds);
        Assert.False(new TaskManagerOptions().Webhooks.AllowPrivateTargets);

        var bound = Bind(new() { ["TaskManager:Webhooks:TimeoutSeconds"] = "3", ["TaskManager:Webhooks:AllowPrivateTargets"] = "true" });

        Assert.Equal(3, bound.Webhooks.TimeoutSeconds);
        Assert.True(bound.Webhooks.AllowPrivateTargets);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("301")]
    public void ATimeoutOutOfRange_FailsValidation_AsTheServiceValidatesItsSettings(string seconds)
    {
        // The validator ValidateDataAnnotations() registers: the nested settings are checked too.
        var validator = new DataAnnotationValidateOptions<TaskManagerOptions>(Options.DefaultName);

        var result = validator.Validate(Options.DefaultName, Bind(new() { ["TaskManager:Webhooks:TimeoutSeconds"] = seconds }));

        Assert.True(result.Failed);
        Assert.Contains("TimeoutSeconds", result.FailureMessage, StringComparison.Ordinal);
        Assert.True(validator.Validate(Options.DefaultName, new TaskManagerOptions()).Succeeded);
    }

    private static TaskManagerOptions Bind(Dictionary<string, string?> settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(TaskManagerOptions.Section).Get<TaskManagerOptions>()!;
}
