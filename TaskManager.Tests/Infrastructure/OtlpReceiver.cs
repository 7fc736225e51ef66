using System.Net;
using System.Text;

namespace TaskManager.Tests.Infrastructure;

/// <summary>One span as an OTLP exporter sent it.</summary>
public sealed record ReceivedSpan(string TraceId, string SpanId, string ParentSpanId, string Name, ulong StartNanos, ulong EndNanos,
    IReadOnlyDictionary<string, string> Attributes);

/// <summary>
/// A small OTLP/HTTP (protobuf) receiver on a free loopback port: it keeps the spans the API
/// exports, so a test can read a task's trace as the Aspire dashboard would.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly HttpListener listener = new();
    private readonly List<ReceivedSpan> spans = [];
    private readonly Task loop;

    public OtlpReceiver()
    {
        Port = RedisServer.FreePort();
        listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        listener.Start();
        loop = Task.Run(ServeAsync);
    }

    public int Port { get; }

    public string Endpoint => $"http://127.0.0.1:{Port}";

    public IReadOnlyList<ReceivedSpan> Spans
    {
        get
        {
            lock (spans)
            {
                return spans.ToArray();
            }
        }
    }

    private async Task ServeAsync()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
            {
                return;
            }
            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            if (context.Request.Url!.AbsolutePath == "/v1/traces")
            {
                var parsed = ParseTraces(body.ToArray());
                lock (spans)
                {
                    spans.AddRange(parsed);
                }
            }
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
        }
    }

    // ExportTraceServiceRequest: 1 resource_spans { 2 scope_spans { 2 spans } }.
    private static List<ReceivedSpan> ParseTraces(byte[] data)
    {
        var result = new List<ReceivedSpan>();
        foreach (var resourceSpans in Fields(data).Where(f => f.Number == 1))
        {
            foreach (var scopeSpans in Fields(resourceSpans.Bytes).Where(f => f.Number == 2))
            {
                foreach (var span in Fields(scopeSpans.Bytes).Where(f => f.Number == 2))
                {
                    result.Add(ParseSpan(span.Bytes));
                }
            }
        }
        return result;
    }

    // Span: 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 7 start (fixed64), 8 end (fixed64), 9 attributes.
    private static ReceivedSpan ParseSpan(byte[] data)
    {
        string traceId = "", spanId = "", parent = "", name = "";
        ulong start = 0, end = 0;
        var attributes = new Dictionary<string, string>();
        foreach (var field in Fields(data))
        {
            switch (field.Number)
            {
                case 1: traceId = Convert.ToHexStringLower(field.Bytes); break;
                case 2: spanId = Convert.ToHexStringLower(field.Bytes); break;
                case 4: parent = Convert.ToHexStringLower(field.Bytes); break;
                case 5: name = Encoding.UTF8.GetString(field.Bytes); break;
                case 7: start = field.Value; break;
                case 8: end = field.Value; break;
                case 9:
                    // KeyValue: 1 key, 2 AnyValue { 1 string, 3 int (varint) }.
                    var key = "";
                    var value = "";
                    foreach (var kv in Fields(field.Bytes))
                    {
                        if (kv.Number == 1)
                        {
                            key = Encoding.UTF8.GetString(kv.Bytes);
                        }
                        else if (kv.Number == 2)
                        {
                            foreach (var any in Fields(kv.Bytes))
                            {
                                value = any.Number == 1 ? Encoding.UTF8.GetString(any.Bytes) : any.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
                            }
                        }
                    }
                    attributes[key] = value;
                    break;
            }
        }
        return new ReceivedSpan(traceId, spanId, parent, name, start, end, attributes);
    }

    private readonly record struct Field(int Number, ulong Value, byte[] Bytes);

    private static IEnumerable<Field> Fields(byte[] data)
    {
        var position = 0;
        while (position < data.Length)
        {
            var tag = Varint(data, ref position);
            var number = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0:
                    yield return new Field(number, Varint(data, ref position), []);
                    break;
                case 1:
                    yield return new Field(number, BitConverter.ToUInt64(data, position), []);
                    position += 8;
                    break;
                case 2:
                    var length = (int)Varint(data, ref position);
                    yield return new Field(number, 0, data[position..(position + length)]);
                    position += length;
                    break;
                case 5:
                    yield return new Field(number, BitConverter.ToUInt32(data, position), []);
                    position += 4;
                    break;
                default:
                    yield break;
            }
        }
    }

    private static ulong Varint(byte[] data, ref int position)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = data[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        listener.Stop();
        listener.Close();
        await loop;
    }
}
