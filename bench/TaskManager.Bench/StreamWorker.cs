using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;

namespace TaskManager.Bench;

/// <summary>When each of a task's chunks was made and when the report that carried it was sent (Stopwatch timestamps).</summary>
public sealed class ChunkTimes(int count)
{
    public long[] Made { get; } = new long[count];

    public long[] Reported { get; } = new long[count];

    /// <summary>When the API answered the report that carried the chunk.</summary>
    public long[] Answered { get; } = new long[count];
}

/// <summary>
/// The streams scenario's worker, in the bench process (one clock with the clients): it leases
/// <c>llm</c> tasks and makes each task's <c>max_tokens</c> tokens at <c>tokensPerSecond</c>,
/// reporting them as the Python worker does: the first chunk at once, then the chunks made since
/// in one progress report at most every <c>reportMs</c> per task (one report in flight per task),
/// the last ones with the result (<c>POST /api/workers/{id}/complete</c>); the progress reports of
/// all of a worker's tasks are group-committed (<c>POST /api/workers/{id}/progress</c>). It records, for each
/// chunk, when it was made and when the report carrying it was sent. Each registered worker has
/// <c>capacity</c> slots (the API allows up to 1,024); a slot is a task, not a process.
/// </summary>
public sealed class StreamWorker(HttpClient client, int tokensPerSecond, int reportMs)
{
    /// <summary>By task id, the times of its chunks.</summary>
    public ConcurrentDictionary<string, ChunkTimes> Chunks { get; } = new(StringComparer.Ordinal);

    private int refused;
    private int reports;

    /// <summary>Progress reports and results sent, each carrying one or more chunks.</summary>
    public int Reports => Volatile.Read(ref reports);

    /// <summary>Reports the API refused (progress or complete not 200), or a task's run that failed to report: 0 in a sound run.</summary>
    public int Refused => Volatile.Read(ref refused);

    /// <summary>Runs <paramref name="workers"/> registered workers of <paramref name="capacity"/> slots until <paramref name="stop"/>.</summary>
    public async Task RunAsync(int workers, int capacity, CancellationToken stop)
    {
        var ids = new string[workers];
        var dotnet = new DotnetWorker(client);
        for (var i = 0; i < workers; i++)
        {
            ids[i] = await dotnet.RegisterAsync($"bench-stream-{i}", capacity);
        }
        await Task.WhenAll(ids.Select(id => Task.Run(() => LoopAsync(id, capacity, stop))));
    }

    private async Task LoopAsync(string workerId, int capacity, CancellationToken stop)
    {
        var running = new ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        var tasks = new List<Task>();
        var heartbeat = Stopwatch.StartNew();
        while (!stop.IsCancellationRequested)
        {
            if (heartbeat.Elapsed > TimeSpan.FromSeconds(4))
            {
                heartbeat.Restart();
                _ = HeartbeatAsync(workerId, running);
            }
            var free = Math.Min(100, capacity - running.Count);
            if (free <= 0)
            {
                await Task.Delay(20, CancellationToken.None);
                continue;
            }
            IReadOnlyList<(string Id, string Token, int Tokens)> leased;
            try
            {
                leased = await LeaseAsync(workerId, free, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            foreach (var (id, token, count) in leased)
            {
                running[id] = token;
                tasks.Add(Task.Run(async () =>
                {
                    try
                    {
                        await RunTaskAsync(workerId, id, token, count);
                    }
                    catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
                    {
                        // Counted with the refused reports; the stream will not be whole, and the round says so.
                        Interlocked.Increment(ref refused);
                    }
                    finally
                    {
                        running.TryRemove(id, out _);
                    }
                }, CancellationToken.None));
            }
            tasks.RemoveAll(t => t.IsCompleted);
        }
        await Task.WhenAll(tasks);
    }

    private async Task<IReadOnlyList<(string Id, string Token, int Tokens)>> LeaseAsync(string workerId, int maxTasks, CancellationToken stop) =>
        (await new DotnetWorker(client).LeaseTasksAsync(workerId, maxTasks, 1, stop)).Select(t =>
        {
            var tokens = t.GetProperty("input").TryGetProperty("max_tokens", out var m) && m.TryGetInt32(out var n) ? n : 16;
            return (t.GetProperty("task_id").GetString()!, t.GetProperty("lease_token").GetString()!, Math.Max(1, tokens));
        }).ToArray();

    private async Task HeartbeatAsync(string workerId, ConcurrentDictionary<string, string> running)
    {
        var body = new StringBuilder("{\"running\":[");
        var first = true;
        foreach (var (id, token) in running)
        {
            body.Append(first ? "" : ",").Append("{\"task_id\":\"").Append(id).Append("\",\"lease_token\":\"").Append(token).Append("\"}");
            first = false;
        }
        try
        {
            using var response = await client.PostAsync($"/api/workers/{workerId}/heartbeat?wait_seconds=0", Deployment.Json(body.Append("]}").ToString()));
        }
        catch (HttpRequestException)
        {
        }
    }

    /// <summary>Token i is made at (i + 1) / tokensPerSecond after the lease; the reports go as the Python worker sends them.</summary>
    private async Task RunTaskAsync(string workerId, string id, string token, int tokens)
    {
        var times = new ChunkTimes(tokens);
        Chunks[id] = times;
        var start = Stopwatch.GetTimestamp();
        var every = Stopwatch.Frequency / (double)tokensPerSecond;
        var least = Stopwatch.Frequency * reportMs / 1000;
        var next = 0; // the first chunk not yet reported
        var lastSent = 0L;
        Task inFlight = Task.CompletedTask;
        for (var i = 0; i < tokens; i++)
        {
            var due = start + (long)((i + 1) * every);
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }
            var now = Stopwatch.GetTimestamp();
            times.Made[i] = now;
            if (i == tokens - 1)
            {
                break; // the last chunks go with the result
            }
            if (inFlight.IsCompleted && (next == 0 || now - lastSent >= least))
            {
                var (from, to) = (next, i + 1);
                next = to;
                lastSent = now;
                inFlight = ProgressAsync(workerId, id, token, times, from, to);
            }
        }
        await inFlight;
        var body = new StringBuilder("{\"results\":[{\"task_id\":\"").Append(id).Append("\",\"lease_token\":\"").Append(token)
            .Append("\",\"output\":{\"text\":\"").Append(Text(tokens)).Append("\",\"finish_reason\":\"length\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":")
            .Append(tokens).Append("}},\"chunks\":[");
        AppendChunks(body, next, tokens);
        body.Append("]}],\"max_tasks\":0}");
        var sent = Stopwatch.GetTimestamp();
        for (var c = next; c < tokens; c++)
        {
            times.Reported[c] = sent;
        }
        Interlocked.Increment(ref reports);
        using var response = await client.PostAsync($"/api/workers/{workerId}/complete", Deployment.Json(body.ToString()));
        var answer = await response.Content.ReadAsStringAsync();
        var answered = Stopwatch.GetTimestamp();
        for (var c = next; c < tokens; c++)
        {
            times.Answered[c] = answered;
        }
        if (!response.IsSuccessStatusCode || !answer.Contains("\"status\":200", StringComparison.Ordinal))
        {
            Interlocked.Increment(ref refused);
        }
    }

    /// <summary>A task's progress report waiting for its worker's next batch.</summary>
    private sealed record PendingReport(string Id, string Token, ChunkTimes Times, int From, int To)
    {
        public TaskCompletionSource Answered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>By worker id, the progress reports waiting for the call in flight to come back.</summary>
    private readonly ConcurrentDictionary<string, (ConcurrentQueue<PendingReport> Queue, int[] Sending)> batches = new(StringComparer.Ordinal);

    /// <summary>
    /// A progress report, group-committed as the Python worker does: while one call of the worker
    /// is on its way, the reports made meanwhile queue, and the next call carries them all
    /// (<c>POST /api/workers/{id}/progress</c>). A chunk counts as reported when its report is made.
    /// </summary>
    private async Task ProgressAsync(string workerId, string id, string token, ChunkTimes times, int from, int to)
    {
        var made = Stopwatch.GetTimestamp();
        for (var c = from; c < to; c++)
        {
            times.Reported[c] = made;
        }
        Interlocked.Increment(ref reports);
        var (queue, sending) = batches.GetOrAdd(workerId, _ => (new ConcurrentQueue<PendingReport>(), new int[1]));
        var report = new PendingReport(id, token, times, from, to);
        queue.Enqueue(report);
        // Whoever finds no call on its way sends what is queued, and goes on while more is: a report
        // queued while a call was on its way is sent by that call's sender when it comes back.
        while (!queue.IsEmpty && Interlocked.CompareExchange(ref sending[0], 1, 0) == 0)
        {
            try
            {
                await SendBatchAsync(workerId, queue);
            }
            finally
            {
                Volatile.Write(ref sending[0], 0);
            }
        }
        await report.Answered.Task;
    }

    private async Task SendBatchAsync(string workerId, ConcurrentQueue<PendingReport> queue)
    {
        var batch = new List<PendingReport>();
        while (batch.Count < 1000 && queue.TryDequeue(out var r))
        {
            batch.Add(r);
        }
        if (batch.Count == 0)
        {
            return;
        }
        var body = new StringBuilder("{\"reports\":[");
        foreach (var r in batch)
        {
            body.Append(r == batch[0] ? "" : ",").Append("{\"task_id\":\"").Append(r.Id).Append("\",\"lease_token\":\"").Append(r.Token)
                .Append("\",\"chunks\":[");
            AppendChunks(body, r.From, r.To);
            body.Append("]}");
        }
        body.Append("]}");
        string answer;
        HttpStatusCode status;
        try
        {
            using var response = await client.PostAsync($"/api/workers/{workerId}/progress", Deployment.Json(body.ToString()));
            status = response.StatusCode;
            answer = await response.Content.ReadAsStringAsync();
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
        {
            (status, answer) = (HttpStatusCode.ServiceUnavailable, "");
        }
        var answered = Stopwatch.GetTimestamp();
        var accepted = status == HttpStatusCode.OK ? CountOf(answer, "\"status\":200") : 0;
        Interlocked.Add(ref refused, batch.Count - accepted);
        foreach (var r in batch)
        {
            for (var c = r.From; c < r.To; c++)
            {
                r.Times.Answered[c] = answered;
            }
            r.Answered.TrySetResult();
        }
    }

    private static int CountOf(string text, string part)
    {
        var (count, at) = (0, 0);
        while ((at = text.IndexOf(part, at, StringComparison.Ordinal)) >= 0)
        {
            (count, at) = (count + 1, at + part.Length);
        }
        return count;
    }

    /// <summary>A token: a word and its space, about the length of a real model's.</summary>
    private const string Token = " tok";

    private static void AppendChunks(StringBuilder body, int from, int to)
    {
        for (var c = from; c < to; c++)
        {
            body.Append(c == from ? "\"" : ",\"").Append(Token).Append('"');
        }
    }

    private static string Text(int tokens) => string.Concat(Enumerable.Repeat(Token, tokens));
}
