using System.Net;
using System.Net.Sockets;

namespace TaskManager.Api.Webhooks;

/// <summary>
/// Which addresses a webhook may not reach unless private targets are allowed: those that lead
/// into the deployment's own machine or network, or to a cloud's metadata service (which hands out
/// the machine's credentials). A client names the URL; without this, a webhook would let any
/// client make the service call its neighbours.
/// </summary>
public static class WebhookTargets
{
    /// <summary>The setting that allows them, as an environment variable.</summary>
    public const string AllowSetting = "TaskManager__Webhooks__AllowPrivateTargets";

    private static readonly IPAddress AwsMetadataV6 = IPAddress.Parse("fd00:ec2::254");

    // IPv4 ranges, most specific first: the metadata address sits inside link-local.
    private static readonly (uint Network, int Bits, string Kind)[] V4 =
    [
        (V4Bits(169, 254, 169, 254), 32, "a cloud metadata address"),
        (V4Bits(0, 0, 0, 0), 8, "an unspecified address"),
        (V4Bits(127, 0, 0, 0), 8, "a loopback address"),
        (V4Bits(10, 0, 0, 0), 8, "a private address"),
        (V4Bits(172, 16, 0, 0), 12, "a private address"),
        (V4Bits(192, 168, 0, 0), 16, "a private address"),
        (V4Bits(169, 254, 0, 0), 16, "a link-local address"),
        (V4Bits(100, 64, 0, 0), 10, "a shared (CGNAT) address"),
        (V4Bits(224, 0, 0, 0), 4, "a multicast address"),
        (V4Bits(240, 0, 0, 0), 4, "a reserved address"),
    ];

    /// <summary>
    /// Why <paramref name="address"/> may not be a webhook's target (<c>"a loopback address"</c>),
    /// or null when it may. An IPv4 address written as IPv6 (<c>::ffff:127.0.0.1</c>, and the
    /// older <c>::127.0.0.1</c> and NAT64's <c>64:ff9b::127.0.0.1</c>) is judged as the IPv4 one.
    /// </summary>
    public static string? Forbidden(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var bits = V4Bits(address);
            foreach (var (network, prefix, kind) in V4)
            {
                if (bits >> (32 - prefix) == network >> (32 - prefix))
                {
                    return kind;
                }
            }
            return null;
        }
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return "not an IP address";
        }
        if (EmbeddedV4(address) is { } v4)
        {
            return Forbidden(v4);
        }
        var bytes = address.GetAddressBytes();
        return address switch
        {
            _ when address.Equals(AwsMetadataV6) => "a cloud metadata address",
            _ when address.Equals(IPAddress.IPv6Loopback) => "a loopback address",
            _ when address.Equals(IPAddress.IPv6Any) => "an unspecified address",
            _ when (bytes[0] & 0xfe) == 0xfc => "a private (unique local) address",
            _ when bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80 => "a link-local address",
            _ when bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0xc0 => "a site-local address",
            _ when bytes[0] == 0xff => "a multicast address",
            _ => null,
        };
    }

    /// <summary>The refusal's one line: which host, which address, why, and how to allow it.</summary>
    public static string Refusal(string host, IPAddress address, string kind) =>
        (IPAddress.TryParse(host.Trim('[', ']'), out var literal) && literal.Equals(address)
            ? $"refused: {address} is {kind}"
            : $"refused: {host} resolves to {address}, {kind}")
        + $"; set {AllowSetting}=true to allow private targets";

    /// <summary>The IPv4 address an IPv6 one stands for: IPv4-mapped, IPv4-compatible, or NAT64's well-known prefix.</summary>
    private static IPAddress? EmbeddedV4(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4();
        }
        var bytes = address.GetAddressBytes();
        var compatible = bytes.AsSpan(0, 12).IndexOfAnyExcept((byte)0) < 0 && !address.Equals(IPAddress.IPv6Any) && !address.Equals(IPAddress.IPv6Loopback);
        var nat64 = bytes[0] == 0x00 && bytes[1] == 0x64 && bytes[2] == 0xff && bytes[3] == 0x9b && bytes.AsSpan(4, 8).IndexOfAnyExcept((byte)0) < 0;
        return compatible || nat64 ? new IPAddress(bytes.AsSpan(12, 4)) : null;
    }

    private static uint V4Bits(IPAddress address)
    {
        var b = address.GetAddressBytes();
        return V4Bits(b[0], b[1], b[2], b[3]);
    }

    private static uint V4Bits(byte a, byte b, byte c, byte d) => (uint)a << 24 | (uint)b << 16 | (uint)c << 8 | d;
}
