using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace TaskManager.Bench;

/// <summary>
/// A minimal worker in .NET speaking the same HTTP protocol as the Python worker (register, lease
/// as a long poll, complete, heartbeat), with no-op tasks: it shows what the server does without
/// Python's cost. Each loop is one registered worker that leases up to <c>batch</c> tasks a call,
/// reports them together and takes the next hand in the same call.
/// </summary>
public sealed class DotnetWorker(HttpClient client)
{
    public static readonly string NoOpOutput = """{"lease_token":"TOKEN","output":{}}""";

    /// <summary>The longest wait the API allows a long poll, from the last registration's answer.</summary>
    public int MaxWaitSeconds { get; private set; } = 30;

    public async Task<string> RegisterAsync(string name, int capacity, string type = "llm")
    {
        var body = $$"""{"name":"{{name}}","task_types":["{{type}}"],"capacity":{{capacity}}}""";
        using var response = await client.PostAsync("/api/workers/register", Deployment.Json(body));
        response.EnsureSuccessStatusCode();
        var answer = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        MaxWaitSeconds = answer.GetProperty("max_wait_seconds").GetInt32();
        return answer.GetProperty("worker_id").GetString()!;
    }

    /// <summary>One long-poll lease; an empty list when it timed out.</summary>
    public async Task<IReadOnlyList<(string Id, string Token)>> LeaseAsync(string workerId, int maxTasks, int waitSeconds, CancellationToken stop = default) =>
        (await LeaseTasksAsync(workerId, maxTasks, waitSeconds, stop))
            .Select(t => (t.GetProperty("task_id").GetString()!, t.GetProperty("lease_token").GetString()!)).ToArray();

    /// <summary>One long-poll lease, each leased task as the API gives it; none when it timed out.</summary>
    public async Task<JsonElement[]> LeaseTasksAsync(string workerId, int maxTasks, int waitSeconds, CancellationToken stop = default)
    {
        using var response = await client.PostAsync($"/api/workers/{workerId}/lease?wait_seconds={waitSeconds}",
            Deployment.Json($$"""{"max_tasks":{{maxTasks}}}"""), stop);
        if (response.StatusCode == HttpStatusCode.NoContent)
        {
            return [];
        }
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync(stop);
        using var json = await JsonDocument.ParseAsync(stream, cancellationToken: stop);
        return json.RootElement.GetProperty("tasks").EnumerateArray().Select(t => t.Clone()).ToArray();
    }

    public async Task CompleteAsync(string workerId, string taskId, string token)
    {
        using var response = await client.PostAsync($"/api/workers/{workerId}/tasks/{taskId}/complete",
            Deployment.Json(NoOpOutput.Replace("TOKEN", token, StringComparison.Ordinal)));
        response.EnsureSuccessStatusCode();
    }

    /// <summary>Completes tasks in one call and takes up to <paramref name="next"/> more in the same answer.</summary>
    public async Task<IReadOnlyList<(string Id, string Token)>> CompleteManyAsync(string workerId,
        IReadOnlyList<(string Id, string Token)> tasks, int next)
    {
        var body = new StringBuilder("{\"results\":[");
        for (var i = 0; i < tasks.Count; i++)
        {
            body.Append(i == 0 ? "" : ",").Append("{\"task_id\":\"").Append(tasks[i].Id)
                .Append("\",\"lease_token\":\"").Append(tasks[i].Token).Append("\",\"output\":{}}");
        }
        body.Append("],\"max_tasks\":").Append(next).Append('}');
        using var response = await client.PostAsync($"/api/workers/{workerId}/complete", Deployment.Json(body.ToString()));
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync();
        using var json = await JsonDocument.ParseAsync(stream);
        if (json.RootElement.GetProperty("results").EnumerateArray().Any(r => r.GetProperty("status").GetInt32() != 200))
        {
            throw new InvalidOperationException("A result was refused: " + json.RootElement);
        }
        return json.RootElement.GetProperty("tasks").EnumerateArray()
            .Select(t => (t.GetProperty("task_id").GetString()!, t.GetProperty("lease_token").GetString()!)).ToArray();
    }

    public async Task HeartbeatAsync(string workerId, int waitSeconds, CancellationToken stop)
    {
        using var response = await client.PostAsync(
            $"/api/workers/{workerId}/heartbeat?wait_seconds={waitSeconds.ToString(CultureInfo.InvariantCulture)}",
            Deployment.Json("""{"running":[]}"""), stop);
        response.EnsureSuccessStatusCode();
    }

    /// <summary>Runs <paramref name="loops"/> workers until <paramref name="stop"/>, each leasing up to <paramref name="batch"/> at a time.</summary>
    public async Task RunAsync(int loops, int batch, CancellationToken stop)
    {
        var ids = new string[loops];
        for (var i = 0; i < loops; i++)
        {
            ids[i] = await RegisterAsync($"bench-dotnet-{i}", batch);
        }
        await Task.WhenAll(ids.Select(id => Task.Run(async () =>
        {
            var heartbeat = Stopwatch.StartNew();
            while (!stop.IsCancellationRequested)
            {
                IReadOnlyList<(string Id, string Token)> tasks;
                try
                {
                    tasks = await LeaseAsync(id, batch, 1, stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                // Report a hand of results at once and take the next hand in the same call, until
                // the queue runs dry; then long-poll again.
                while (tasks.Count > 0)
                {
                    tasks = await CompleteManyAsync(id, tasks, batch);
                }
                if (heartbeat.Elapsed > TimeSpan.FromSeconds(4))
                {
                    await HeartbeatAsync(id, 0, CancellationToken.None);
                    heartbeat.Restart();
                }
            }
        })));
    }
}
