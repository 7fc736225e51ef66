using System.Net;
using Microsoft.AspNetCore.HttpOverrides;

namespace TaskManager.Api.Security;

/// <summary>
/// The proxies (a gateway, a load balancer) whose X-Forwarded-For, -Proto, -Host and -Prefix headers
/// the API believes: the client's address, and the scheme, host and path under which the client
/// reaches the API, which the links in answers (Location, a task's <c>urls</c>) are made of.
/// From anyone else those headers are ignored, so a client cannot make itself look local (the
/// Hangfire dashboard opens to loopback in Development) or steer the links others are given.
///
/// <c>TaskManager:TrustedProxies</c> lists addresses and CIDR ranges, comma-separated (default
/// <c>127.0.0.0/8,::1/128</c>: a gateway on the same machine); empty trusts none.
/// </summary>
public static class TrustedProxies
{
    public const string Default = "127.0.0.0/8,::1/128";

    /// <summary>The networks <paramref name="setting"/> lists, or why it is not valid.</summary>
    public static IReadOnlyList<System.Net.IPNetwork> Parse(string? setting, out string? error)
    {
        var networks = new List<System.Net.IPNetwork>();
        error = null;
        foreach (var entry in (setting ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (System.Net.IPNetwork.TryParse(entry, out var network))
            {
                networks.Add(network);
            }
            else if (IPAddress.TryParse(entry, out var address))
            {
                networks.Add(new System.Net.IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
            }
            else
            {
                error = $"TaskManager:TrustedProxies: '{entry}' is neither an IP address nor a CIDR range (such as 10.0.0.0/8).";
                return [];
            }
        }
        return networks;
    }

    /// <summary>Believes the four X-Forwarded headers from the listed proxies only.</summary>
    public static void Configure(ForwardedHeadersOptions options, IReadOnlyList<System.Net.IPNetwork> trusted)
    {
        options.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto
            | ForwardedHeaders.XForwardedHost | ForwardedHeaders.XForwardedPrefix;
        options.KnownIPNetworks.Clear();
        options.KnownProxies.Clear();
        foreach (var network in trusted)
        {
            options.KnownIPNetworks.Add(network);
        }
        // A chain of trusted proxies (a load balancer in front of the gateway) is walked back to the
        // first address that is not one of them; the limit is the trust list, not a count.
        options.ForwardLimit = null;
        // Any host a trusted proxy names; Kestrel has already checked the Host header's syntax.
        options.AllowedHosts.Clear();
    }
}
