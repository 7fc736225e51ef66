using Microsoft.Extensions.Primitives;
using TaskManager.Api.Endpoints;

namespace TaskManager.Tests.Unit;

/// <summary>
/// The <c>wait</c> preference read from <c>Prefer</c> headers as RFC 7240 writes them: several
/// preferences in one header or in several, names in any case, values quoted or not, spaces
/// around <c>=</c>, parameters; the first <c>wait</c> counts; other preferences change nothing.
/// </summary>
[Trait("Category", "Unit")]
public sealed class PreferHeaderTests
{
    [Theory]
    [InlineData("wait=5", 5)]
    [InlineData("WAIT=5", 5)]
    [InlineData("respond-async, wait=5", 5)]
    [InlineData("respond-async,wait=60", 60)]
    [InlineData("wait = 7", 7)]
    [InlineData("  wait=7  ", 7)]
    [InlineData("wait=\"12\"", 12)]
    [InlineData("wait=05", 5)]
    [InlineData("wait=0", 0)]
    [InlineData("wait=3; foo=bar", 3)]
    [InlineData("handling=lenient; x=\"a, wait=9\", wait=2", 2)]
    [InlineData("wait=4, wait=oops", 4)]
    [InlineData("wait=4, wait=9", 4)]
    [InlineData("respond-async", 0)]
    [InlineData("return=minimal, handling=strict", 0)]
    [InlineData("waiting=abc", 0)]
    [InlineData("", 0)]
    [InlineData(",,", 0)]
    public void AValidOrAbsentWait_IsRead(string header, int seconds)
    {
        Assert.True(PreferWait.TryParse(new StringValues(header), out var read, out var error), error);
        Assert.Equal(seconds, read);
    }

    [Fact]
    public void SeveralPreferHeaders_AreOneList_TheFirstWaitCounting()
    {
        Assert.True(PreferWait.TryParse(new StringValues(["respond-async", "wait=8", "wait=20"]), out var read, out _));
        Assert.Equal(8, read);
    }

    [Theory]
    [InlineData("wait=61")]
    [InlineData("wait=-1")]
    [InlineData("wait=1.5")]
    [InlineData("wait=abc")]
    [InlineData("wait=")]
    [InlineData("wait")]
    [InlineData("wait=\"\"")]
    [InlineData("wait=99999999999999999999")]
    [InlineData("respond-async, wait=5s")]
    [InlineData("wait=oops, wait=4")]
    public void AWaitThatIsNotAWholeNumberOfSecondsUpToSixty_IsRefused_SayingWhy(string header)
    {
        Assert.False(PreferWait.TryParse(new StringValues(header), out _, out var error));
        Assert.Contains("whole number of seconds from 0", error, StringComparison.Ordinal);
    }
}
