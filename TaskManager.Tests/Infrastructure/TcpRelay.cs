using System.Net;
using System.Net.Sockets;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// A loopback TCP relay in front of a server, whose open connections a test can cut at once, as a
/// proxy's time-out or a network blip does, to see a client make its connection again.
/// </summary>
public sealed class TcpRelay : IAsyncDisposable
{
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly Uri target;
    private readonly List<(TcpClient Client, TcpClient Server)> open = [];
    private readonly CancellationTokenSource stop = new();
    private readonly Task accepting;

    public TcpRelay(Uri target)
    {
        this.target = target;
        listener.Start();
        Address = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/");
        accepting = AcceptAsync();
    }

    /// <summary>The relay's own address, to give the client instead of the server's.</summary>
    public Uri Address { get; }

    /// <summary>How many connections the relay has accepted.</summary>
    public int Accepted { get; private set; }

    /// <summary>How many bytes the relay has passed on from clients to the server.</summary>
    public long BytesToServer => Interlocked.Read(ref bytesToServer);

    private long bytesToServer;

    /// <summary>Closes every connection open now; new ones are relayed as before.</summary>
    public void CutAll()
    {
        lock (open)
        {
            foreach (var (client, server) in open)
            {
                client.Client.Close(0);
                server.Close();
            }
            open.Clear();
        }
    }

    private async Task AcceptAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            var server = new TcpClient();
            await server.ConnectAsync(target.Host, target.Port);
            lock (open)
            {
                open.Add((client, server));
                Accepted++;
            }
            _ = PumpAsync(client.GetStream(), server.GetStream(), count: true);
            _ = PumpAsync(server.GetStream(), client.GetStream(), count: false);
        }
    }

    private async Task PumpAsync(Stream from, Stream to, bool count)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer)) > 0)
            {
                await to.WriteAsync(buffer.AsMemory(0, read));
                if (count)
                {
                    Interlocked.Add(ref bytesToServer, read);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
        {
            // The connection was cut: that is what the relay is for.
        }
        finally
        {
            to.Close();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        listener.Stop();
        await accepting;
        CutAll();
        stop.Dispose();
    }
}
