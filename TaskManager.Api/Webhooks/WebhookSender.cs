using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Options;

namespace TaskManager.Api.Webhooks;

/// <summary>
/// What one delivery attempt came to. <see cref="StatusCode"/> is the receiver's answer, whatever
/// it was (a redirect too: none is followed), or null when none came: the target was refused
/// (<see cref="Refused"/>, nothing was sent), or the name did not resolve, the connection or TLS
/// failed, or the attempt timed out; <see cref="Error"/> then says which, in one line.
/// </summary>
public sealed record WebhookAttemptResult(int? StatusCode, TimeSpan Duration, string? Error, bool Refused)
{
    /// <summary>The receiver took the delivery: it answered 2xx.</summary>
    public bool Delivered => StatusCode is >= 200 and < 300;
}

/// <summary>
/// Sends one signed delivery (Standard Webhooks): a POST of the JSON body with <c>webhook-id</c>,
/// <c>webhook-timestamp</c> and <c>webhook-signature</c>, within
/// <see cref="WebhookOptions.TimeoutSeconds"/> for the whole attempt.
/// </summary>
/// <remarks>
/// A client names the URL, so the target's address is checked where the connection is made, in
/// the handler's connect step: the name is resolved once, every address it resolves to is checked
/// (<see cref="WebhookTargets"/>), and the connection is made to one of those addresses, never to
/// the name again, so a DNS answer that changes between a check and the connect (rebinding) cannot
/// lead it elsewhere. No proxy is used (it would make the connection instead), and no redirect is
/// followed. Of the answer only the status counts; at most 64 KiB of its body is read, so that a
/// small one leaves the connection reusable, and a larger one, or one that does not end in time,
/// is dropped with its connection.
/// </remarks>
public sealed class WebhookSender : IDisposable
{
    public const string UserAgent = "TaskManager-Webhooks/1";

    /// <summary>The most of an answer's body that is read.</summary>
    public const int MaxAnswerBytes = 64 * 1024;

    private static readonly MediaTypeHeaderValue Json = new("application/json");

    private readonly HttpClient client;
    private readonly TimeSpan timeout;
    private readonly bool allowPrivateTargets;
    private readonly TimeProvider time;

    public WebhookSender(IOptions<TaskManagerOptions> options, TimeProvider time)
    {
        var settings = options.Value.Webhooks;
        timeout = TimeSpan.FromSeconds(settings.TimeoutSeconds);
        allowPrivateTargets = settings.AllowPrivateTargets;
        this.time = time;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = ConnectAsync,
            ConnectTimeout = timeout,
            AllowAutoRedirect = false,
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            // One handler for the life of the process: connections are pooled per target, and
            // renewed every few minutes, so that a target's new address is picked up (and checked).
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            // An answer not read to its end is not drained for reuse: its connection is closed.
            MaxResponseDrainSize = 0,
        };
        client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>
    /// Posts <paramref name="body"/> to <paramref name="target"/>, signed by <paramref name="signature"/>
    /// (the <c>webhook-signature</c> value, <see cref="WebhookSignature.Sign"/>). Never throws for
    /// what the target does; throws <see cref="OperationCanceledException"/> only when
    /// <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    public async Task<WebhookAttemptResult> SendAsync(
        Uri target, string messageId, long timestamp, string body, string signature, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        if (!target.IsAbsoluteUri || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps))
        {
            return new WebhookAttemptResult(null, TimeSpan.Zero, "refused: a webhook's target must be an absolute http or https URL", Refused: true);
        }
        using var timer = new CancellationTokenSource(timeout, time);
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        using var request = new HttpRequestMessage(HttpMethod.Post, target) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)) };
        request.Content.Headers.ContentType = Json;
        request.Headers.TryAddWithoutValidation("webhook-id", messageId);
        request.Headers.TryAddWithoutValidation("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("webhook-signature", signature);
        request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, attempt.Token).ConfigureAwait(false);
            await ReadAnswerAsync(response, attempt.Token).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            return new WebhookAttemptResult((int)response.StatusCode, time.GetElapsedTime(started), null, Refused: false);
        }
        catch (OperationCanceledException) when (timer.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return new WebhookAttemptResult(null, time.GetElapsedTime(started), $"timed out after {timeout.TotalSeconds:0.###} s", Refused: false);
        }
        catch (HttpRequestException ex) when (RefusalIn(ex) is { } refusal)
        {
            return new WebhookAttemptResult(null, time.GetElapsedTime(started), refusal.Message, Refused: true);
        }
        catch (HttpRequestException ex)
        {
            return new WebhookAttemptResult(null, time.GetElapsedTime(started), Describe(ex), Refused: false);
        }
    }

    public void Dispose() => client.Dispose();

    /// <summary>Reads the answer's body, up to <see cref="MaxAnswerBytes"/>, and forgets it; a body that fails or stalls is left.</summary>
    private static async Task ReadAnswerAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            for (var read = 0; read < MaxAnswerBytes;)
            {
                var n = await stream.ReadAsync(buffer.AsMemory(0, Math.Min(buffer.Length, MaxAnswerBytes - read)), cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    return;
                }
                read += n;
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
        {
            // The status has come, and it is the answer; the body only decides whether the connection is reused.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// The handler's connect step: resolve the target once, refuse it if any of its addresses is
    /// one it may not reach, else connect to one of those very addresses.
    /// </summary>
    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var (host, port) = (context.DnsEndPoint.Host, context.DnsEndPoint.Port);
        var addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        if (!allowPrivateTargets)
        {
            foreach (var address in addresses)
            {
                if (WebhookTargets.Forbidden(address) is { } kind)
                {
                    throw new WebhookTargetRefusedException(WebhookTargets.Refusal(host, address, kind));
                }
            }
        }
        SocketException? failure = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                failure = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw failure ?? new SocketException((int)SocketError.HostNotFound);
    }

    private static WebhookTargetRefusedException? RefusalIn(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            if (e is WebhookTargetRefusedException refusal)
            {
                return refusal;
            }
        }
        return null;
    }

    /// <summary>A failure in one line: what failed, and the innermost reason (<c>connection failed: Connection refused</c>).</summary>
    private static string Describe(HttpRequestException exception)
    {
        var what = exception.HttpRequestError switch
        {
            HttpRequestError.NameResolutionError => "name resolution failed",
            HttpRequestError.ConnectionError => "connection failed",
            HttpRequestError.SecureConnectionError => "TLS failed",
            HttpRequestError.ResponseEnded => "the connection closed before an answer",
            HttpRequestError.InvalidResponse => "the answer is not valid HTTP",
            HttpRequestError.ConfigurationLimitExceeded => "the answer's headers are too large",
            _ => "the request failed",
        };
        var innermost = exception.GetBaseException();
        var reason = string.Join(' ', innermost.Message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return $"{what}: {(reason.Length > 300 ? reason[..300] + "..." : reason)}";
    }
}

/// <summary>A target the sender may not reach (<see cref="WebhookTargets"/>); thrown where the connection would be made.</summary>
public sealed class WebhookTargetRefusedException(string message) : IOException(message);
