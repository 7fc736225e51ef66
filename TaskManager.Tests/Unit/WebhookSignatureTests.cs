using System.Security.Cryptography;
using System.Text;
using TaskManager.Api.Webhooks;

namespace TaskManager.Tests.Unit;

/// <summary>
/// Standard Webhooks signing, checked the way a receiver's library checks it, written here apart
/// from the code under test; and against vectors computed by another implementation.
/// </summary>
[Trait("Category", "Unit")]
public sealed class WebhookSignatureTests
{
    private const string Id = "01JTASKWEBHOOK0000000000001";
    private const long Timestamp = 1767225600;
    private const string Body = """{"id":"t1","status":"succeeded","output":{"text":"café ✓"}}""";

    [Fact]
    public void ASignature_VerifiesAsAReceiverChecksIt_AndNotForAnotherBodyIdTimeOrSecret()
    {
        var secret = WebhookSignature.NewSecret();

        var header = WebhookSignature.Sign(Id, Timestamp, Body, [secret]);

        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        Assert.Equal(32, Convert.FromBase64String(secret["whsec_".Length..]).Length);
        Assert.True(ReceiverVerifies(secret, Id, Timestamp, Body, header));
        Assert.False(ReceiverVerifies(secret, Id, Timestamp, Body.Replace("t1", "t2", StringComparison.Ordinal), header));
        Assert.False(ReceiverVerifies(secret, Id + "x", Timestamp, Body, header));
        Assert.False(ReceiverVerifies(secret, Id, Timestamp + 1, Body, header));
        Assert.False(ReceiverVerifies(WebhookSignature.NewSecret(), Id, Timestamp, Body, header));
    }

    [Fact]
    public void TwoSecrets_GiveTwoEntries_AndAReceiverHoldingEitherOneVerifies()
    {
        var current = WebhookSignature.NewSecret();
        var previous = WebhookSignature.NewSecret();

        var header = WebhookSignature.Sign(Id, Timestamp, Body, [current, previous]);

        Assert.Equal(2, header.Split(' ').Length);
        Assert.All(header.Split(' '), entry => Assert.StartsWith("v1,", entry, StringComparison.Ordinal));
        Assert.True(ReceiverVerifies(current, Id, Timestamp, Body, header));
        Assert.True(ReceiverVerifies(previous, Id, Timestamp, Body, header));
        Assert.False(ReceiverVerifies(WebhookSignature.NewSecret(), Id, Timestamp, Body, header));
    }

    // Computed with Python's hmac and base64, not with this code:
    //   python3 -c "import hmac,hashlib,base64; k=base64.b64decode(SECRET[6:]);
    //     print('v1,'+base64.b64encode(hmac.new(k, f'{ID}.{TS}.{BODY}'.encode(), hashlib.sha256).digest()).decode())"
    // The second body has non-ASCII text: what is signed is its UTF-8.
    [Theory]
    [InlineData("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330L, """{"test": 2432232314}""",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")]
    [InlineData("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "01JTASK0000000000000000001", 1767225600L,
        """{"task_id":"t1","status":"succeeded","note":"café ✓"}""", "v1,3wGyybdjt1gh/B+jbaLls7jxdeSWN281UhnIn6w5Occ=")]
    public void Sign_MatchesAVectorComputedByAnotherImplementation(string secret, string id, long timestamp, string body, string expected)
    {
        Assert.Equal(expected, WebhookSignature.Sign(id, timestamp, body, [secret]));
        Assert.True(ReceiverVerifies(secret, id, timestamp, body, expected));
    }

    /// <summary>
    /// What a Standard Webhooks receiver does: the key is the base64 after <c>whsec_</c>; the
    /// content is <c>{id}.{timestamp}.{body}</c>; the header holds space-separated
    /// <c>v1,{base64}</c> entries, and one equal to the expected signature (compared in fixed
    /// time) verifies.
    /// </summary>
    private static bool ReceiverVerifies(string secret, string id, long timestamp, string body, string header)
    {
        using var hmac = new HMACSHA256(Convert.FromBase64String(secret.Split('_', 2)[1]));
        var expected = hmac.ComputeHash(Encoding.UTF8.GetBytes(id + "." + timestamp + "." + body));
        foreach (var entry in header.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = entry.Split(',', 2);
            if (parts.Length == 2 && parts[0] == "v1"
                && CryptographicOperations.FixedTimeEquals(Convert.FromBase64String(parts[1]), expected))
            {
                return true;
            }
        }
        return false;
    }
}
