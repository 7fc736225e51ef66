using System.Globalization;
using System.Text.Json;
using Aspire.Hosting.Testing;
using TaskManager.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TaskManager.Tests.EndToEnd;

/// <summary>
/// The AppHost with two API replicas and two schedulers: a worker long-polls one API replica while
/// clients submit through the other, both schedulers sweep, and nothing runs twice but the
/// attempts that were killed. Alone (not beside other tests), since it bounds a wake-up and relies
/// on short leases not expiring for a busy machine's sake.
/// </summary>
[Trait("Category", "EndToEnd")]
[Collection(TimingCollection.Name)]
public sealed class ScaleOutTests(ScaleOutFixture app, ITestOutputHelper output) : IClassFixture<ScaleOutFixture>
{
    private static readonly TimeSpan TaskTimeout = TimeSpan.FromSeconds(90);

    /// <summary>A pickup slower than this would mean the worker's long poll was not woken (it lasts <see cref="ScaleOutFixture.LongPollSeconds"/>).</summary>
    private static readonly TimeSpan WakeUpBound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task WorkerOnOneApiReplica_TasksSubmittedOnTheOther_SweepsOnBothSchedulers_NothingRunsTwiceButTheKilledAttempt()
    {
        try
        {
            await CrossReplicaWorkloadAsync();
        }
        finally
        {
            await app.StopWorkersAsync();
        }
    }

    [Fact]
    public async Task EachSchedulerReplica_SweepsLeasesAndRunsRetriesAlone_WhileTheOtherIsFrozen()
    {
        try
        {
            await SchedulersInTurnAsync();
        }
        finally
        {
            await app.StopWorkersAsync();
        }
    }

    private async Task CrossReplicaWorkloadAsync()
    {
        Assert.Equal(ScaleOutFixture.Replicas, app.Api.Count);
        Assert.Equal(ScaleOutFixture.Replicas, app.Schedulers.Count);
        var (replicaA, replicaB) = (app.Api[0], app.Api[1]);
        // Each replica has its own address, apart from the proxy that the api endpoint names.
        var proxy = app.App.GetEndpoint("api", "http");
        Assert.Equal(3, new[] { replicaA.BaseAddress, replicaB.BaseAddress, proxy }.Distinct().Count());
        output.WriteLine($"api proxy {proxy}; api replicas: {replicaA.Id} at {replicaA.BaseAddress}, {replicaB.Id} at {replicaB.BaseAddress}; " +
            $"schedulers: {string.Join(", ", app.Schedulers.Select(s => $"{s.Id} at {s.BaseAddress}"))}");
        using var clientA = ScaleOutFixture.ClientOf(replicaA);
        using var clientB = ScaleOutFixture.ClientOf(replicaB);
        var (submittedOnABefore, submittedOnBBefore) = (await MetricAsync(clientA, "taskmanager_tasks_submitted_total"), await MetricAsync(clientB, "taskmanager_tasks_submitted_total"));
        var (leasedOnABefore, leasedOnBBefore) = (await MetricAsync(clientA, "taskmanager_task_wait_milliseconds_count"), await MetricAsync(clientB, "taskmanager_task_wait_milliseconds_count"));

        // Both schedulers run a Hangfire server (named after its process) on the shared storage.
        var processes = await app.SchedulerProcessesAsync();
        output.WriteLine($"scheduler processes: {string.Join(", ", processes.Select(p => $"{p.Key.Id} pid {p.Value}"))}");

        // Worker A long-polls replica A only (llm, sd, tts); every task is submitted through replica B.
        var workerAProcess = app.StartWorker("scale-a", replicaA, "llm,sd,tts", capacity: 4);
        var workerA = await ScaleOutFixture.WorkerIdAsync(clientB, "scale-a");
        await ScaleOutFixture.WaitReadyAsync(workerAProcess);

        // The first task reaches the idle worker, waiting in its long poll on replica A, by the
        // wake-up that replica B's submission publishes through Redis: without it the task would
        // wait for the 60 s long poll to end.
        var probe = await SubmitAsync(clientB, """{"type":"llm","input":{"prompt":"across replicas"}}""");
        var probed = await FinalAsync(clientB, probe);
        Assert.Equal("succeeded", probed.GetProperty("status").GetString());
        var probeWait = TimeSpan.FromMilliseconds(probed.GetProperty("metrics").GetProperty("wait_ms").GetInt64());
        Assert.True(probeWait < WakeUpBound, $"The task waited {probeWait.TotalMilliseconds:0} ms for the worker on the other replica.");

        var plain = new List<string>();
        foreach (var request in (string[])[
            """{"type":"llm","input":{"prompt":"one"},"metadata":{"sim":{"duration_ms":200}}}""",
            """{"type":"llm","input":{"prompt":"two"},"metadata":{"sim":{"duration_ms":200}}}""",
            """{"type":"sd","input":{"prompt":"three","width":64,"height":64,"steps":2},"metadata":{"sim":{"duration_ms":200}}}""",
            """{"type":"sd","input":{"prompt":"four","width":64,"height":64,"steps":2},"metadata":{"sim":{"duration_ms":200}}}""",
            """{"type":"tts","input":{"text":"five"},"metadata":{"sim":{"duration_ms":200}}}""",
            """{"type":"tts","input":{"text":"six"},"metadata":{"sim":{"duration_ms":200}}}"""])
        {
            plain.Add(await SubmitAsync(clientB, request));
        }
        // Both attempts run past their 1 s timeout (ended by the worker's report or by the deadline
        // sweep, whichever comes first), with a Hangfire retry job between them.
        var timedOut = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            timedOut.Add(await SubmitAsync(clientB, """{"type":"llm","input":{"prompt":"too slow"},"timeout_seconds":1,"max_attempts":2,"metadata":{"sim":{"duration_ms":60000}}}"""));
        }
        // A failure the worker reports, retried once by a Hangfire job.
        var failing = await SubmitAsync(clientB, """{"type":"tts","input":{"text":"fails"},"max_attempts":2,"metadata":{"sim":{"fail":"retryable"}}}""");

        // A worker killed mid-task: only it serves image_to_text until it dies; the lease sweep
        // then queues its task again and a replacement finishes it.
        var doomedProcess = app.StartWorker("scale-doomed", replicaA, "image_to_text");
        var doomed = await ScaleOutFixture.WorkerIdAsync(clientB, "scale-doomed");
        var killed = await SubmitAsync(clientB, """{"type":"image_to_text","input":{"image":"aGk="},"metadata":{"sim":{"duration_ms":4000}}}""");
        await Wait.ForAsync(() => GetAsync(clientB, killed), t => t.GetProperty("status").GetString() == "running",
            TaskTimeout, $"task {killed} to run on the doomed worker");
        // Running from the API's view since the lease; killed once the worker has started it too.
        await Wait.UntilAsync(() => StartedTasks(doomedProcess.Output).Contains((killed, 1)), TaskTimeout,
            $"the doomed worker to log that it started task {killed}");
        doomedProcess.Process.Kill(entireProcessTree: true);
        await doomedProcess.Process.WaitForExitAsync();
        app.StartWorker("scale-replacement", replicaA, "image_to_text");
        var replacement = await ScaleOutFixture.WorkerIdAsync(clientB, "scale-replacement");

        var all = plain.Concat(timedOut).Append(failing).Append(killed).ToArray();
        var finals = (await Task.WhenAll(all.Select(id => FinalAsync(clientB, id)))).ToDictionary(t => t.GetProperty("id").GetString()!);

        // Each task's history has exactly the attempts expected, each on the worker expected.
        Assert.Equal([$"1 {workerA} succeeded"], Attempts(probed));
        foreach (var id in plain)
        {
            Assert.Equal("succeeded", finals[id].GetProperty("status").GetString());
            Assert.Equal([$"1 {workerA} succeeded"], Attempts(finals[id]));
        }
        foreach (var id in timedOut)
        {
            Assert.True(finals[id].GetProperty("status").GetString() == "timed_out", finals[id].ToString());
            Assert.Equal([$"1 {workerA} timeout", $"2 {workerA} timeout"], Attempts(finals[id]));
        }
        Assert.True(finals[failing].GetProperty("status").GetString() == "failed", finals[failing].ToString());
        Assert.Equal([$"1 {workerA} failed", $"2 {workerA} failed"], Attempts(finals[failing]));
        Assert.Equal("succeeded", finals[killed].GetProperty("status").GetString());
        Assert.Equal([$"1 {doomed} lease_expired", $"2 {replacement} succeeded"], Attempts(finals[killed]));

        // The workers' own logs agree: each attempt started once, on one worker.
        var started = app.Workers.SelectMany(w => StartedTasks(w.Output)).GroupBy(s => s).ToDictionary(g => g.Key, g => g.Count());
        foreach (var id in plain.Append(probe))
        {
            Assert.Equal(1, started.GetValueOrDefault((id, 1)));
            Assert.Equal(0, started.GetValueOrDefault((id, 2)));
        }
        foreach (var id in timedOut.Append(failing).Append(killed))
        {
            Assert.True(started.GetValueOrDefault((id, 1)) == 1 && started.GetValueOrDefault((id, 2)) == 1 && started.GetValueOrDefault((id, 3)) == 0,
                $"Task {id} started as attempts 1, 2, 3: {started.GetValueOrDefault((id, 1))}, {started.GetValueOrDefault((id, 2))}, {started.GetValueOrDefault((id, 3))} times.");
        }

        // One Hangfire retry job for each retry, none for the task taken back from the dead worker
        // (queued again at once), and none left waiting or failed. A retry job is marked succeeded
        // once its method has returned, which can be after the attempt it queued has ended: wait
        // (bounded) for as many as there are retries to be marked.
        var monitoring = app.HangfireStorage.GetMonitoringApi();
        var expected = timedOut.Append(failing).Select(id => (id, 1)).Order().ToArray();
        var retryJobs = await Wait.ForAsync(() => Task.FromResult(monitoring.SucceededJobs(0, 1000).Select(j => j.Value.Job?.Args).OfType<IReadOnlyList<object>>()
                .Where(args => args.Count == 2 && all.Contains(args[0] as string))
                .Select(args => ((string)args[0], Convert.ToInt32(args[1], CultureInfo.InvariantCulture)))
                .Order()
                .ToArray()),
            jobs => jobs.Length >= expected.Length, TimeSpan.FromSeconds(10), "the retry jobs to be marked succeeded");
        Assert.Equal(expected, retryJobs);
        Assert.Equal(0, monitoring.ScheduledCount() + monitoring.EnqueuedCount("default") + monitoring.ProcessingCount() + monitoring.FailedCount());

        // The schedulers' logs: each retry job ran once, and the dead worker's lease was taken back
        // once, by one scheduler or the other. (A timeout is ended by the worker's own report or by
        // the deadline sweep, whichever comes first; a sweep logs it at most once.)
        var logs = await Task.WhenAll(app.Schedulers.Select(app.LogAsync));
        int Logged(string what) => logs.Sum(lines => lines.Count(l => l.Contains(what, StringComparison.Ordinal)));
        foreach (var id in timedOut.Append(failing))
        {
            Assert.Equal(1, Logged($"Retry of task {id} after attempt 1: queued again"));
            Assert.Equal(0, Logged($"Retry of task {id} after attempt 2"));
        }
        foreach (var id in timedOut)
        {
            Assert.InRange(Logged($"task.timeout: task {id} is now scheduled"), 0, 1);
            Assert.InRange(Logged($"task.timeout: task {id} is now timed_out"), 0, 1);
        }
        Assert.Equal(1, Logged($"task.lease_expired: task {killed} is now queued"));
        output.WriteLine("scheduler log lines of moves and retries: " + string.Join(", ", app.Schedulers.Zip(logs, (s, l) =>
            $"{s.Id} {l.Count(x => x.Contains(" is now ", StringComparison.Ordinal) || x.Contains("Retry of task", StringComparison.Ordinal))}")));

        // Replica B took every submission, replica A every lease: the work crossed replicas.
        var attemptsStarted = finals.Values.Append(probed).Sum(t => t.GetProperty("attempts").GetArrayLength());
        Assert.Equal(all.Length + 1, await MetricAsync(clientB, "taskmanager_tasks_submitted_total") - submittedOnBBefore);
        Assert.Equal(0, await MetricAsync(clientA, "taskmanager_tasks_submitted_total") - submittedOnABefore);
        Assert.Equal(attemptsStarted, await MetricAsync(clientA, "taskmanager_task_wait_milliseconds_count") - leasedOnABefore);
        Assert.Equal(0, await MetricAsync(clientB, "taskmanager_task_wait_milliseconds_count") - leasedOnBBefore);
    }

    private async Task SchedulersInTurnAsync()
    {
        var api = app.Api[1];
        using var client = ScaleOutFixture.ClientOf(api);
        app.StartWorker("solo", api, "llm", capacity: 2);
        await ScaleOutFixture.WorkerIdAsync(client, "solo");
        var processes = await app.SchedulerProcessesAsync();

        foreach (var alone in app.Schedulers)
        {
            var frozen = app.Schedulers.Single(s => s != alone);
            // The only image_to_text worker, until it is killed below.
            var doomedProcess = app.StartWorker($"solo-doomed-{alone.Id}", api, "image_to_text");
            var doomed = await ScaleOutFixture.WorkerIdAsync(client, $"solo-doomed-{alone.Id}");

            // The other scheduler is frozen (SIGSTOP): it sends Redis nothing until it is thawed, so
            // the lease sweep and the retry below can only be done by this one.
            Signal(processes[frozen], "STOP");
            try
            {
                var retried = await SubmitAsync(client, """{"type":"llm","input":{"prompt":"alone"},"max_attempts":2,"metadata":{"sim":{"fail":"retryable"}}}""");
                var recovered = await SubmitAsync(client, """{"type":"image_to_text","input":{"image":"aGk="},"metadata":{"sim":{"duration_ms":2000}}}""");
                await Wait.ForAsync(() => GetAsync(client, recovered), t => t.GetProperty("status").GetString() == "running",
                    TaskTimeout, $"task {recovered} to run on the doomed worker");
                doomedProcess.Process.Kill(entireProcessTree: true);
                await doomedProcess.Process.WaitForExitAsync();
                var replacementProcess = app.StartWorker($"solo-replacement-{alone.Id}", api, "image_to_text");
                var replacement = await ScaleOutFixture.WorkerIdAsync(client, $"solo-replacement-{alone.Id}");

                var retriedFinal = await FinalAsync(client, retried);
                var recoveredFinal = await FinalAsync(client, recovered);
                Assert.Equal("failed", retriedFinal.GetProperty("status").GetString());
                Assert.Equal(["1 failed", "2 failed"], Outcomes(retriedFinal));
                Assert.Equal("succeeded", recoveredFinal.GetProperty("status").GetString());
                Assert.Equal([$"1 {doomed} lease_expired", $"2 {replacement} succeeded"], Attempts(recoveredFinal));

                // The retry is queued by its Hangfire job or, when that job is late past the overdue
                // limit (a loaded machine), by the scheduler's safety sweep: either way by this one.
                string[][] lines = [
                    [$"Retry of task {retried} after attempt 1: queued again", $"overdue retry: task {retried} is now queued"],
                    [$"task.lease_expired: task {recovered} is now queued"]];
                await Wait.UntilAsync(async () => (await app.LogAsync(alone)) is var log
                        && lines.All(either => log.Any(l => either.Any(line => l.Contains(line, StringComparison.Ordinal)))),
                    TimeSpan.FromSeconds(10), $"{alone.Id} to log '{string.Join("' and '", lines.Select(either => string.Join("' or '", either)))}'");
                var frozenLog = await app.LogAsync(frozen);
                Assert.DoesNotContain(frozenLog, l => lines.SelectMany(either => either).Any(line => l.Contains(line, StringComparison.Ordinal)));

                // The next round's doomed worker is again the only one for image_to_text.
                replacementProcess.Process.Kill(entireProcessTree: true);
                await replacementProcess.Process.WaitForExitAsync();
            }
            finally
            {
                Signal(processes[frozen], "CONT");
            }
        }
    }

    private static void Signal(int pid, string signal)
    {
        using var kill = System.Diagnostics.Process.Start("kill", $"-{signal} {pid}")!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    private static async Task<string> SubmitAsync(HttpClient client, string json)
    {
        var response = await client.PostJsonAsync("/api/tasks", json);
        var body = await response.JsonAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Accepted, body.ToString());
        return body.GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> GetAsync(HttpClient client, string id) => await (await client.GetAsync($"/api/tasks/{id}")).JsonAsync();

    private static Task<JsonElement> FinalAsync(HttpClient client, string id) =>
        Wait.ForAsync(() => GetAsync(client, id),
            t => t.GetProperty("status").GetString() is "succeeded" or "failed" or "timed_out" or "canceled",
            TaskTimeout, $"task {id} to finish");

    /// <summary>A task's attempt history, one "attempt worker outcome" each.</summary>
    private static string[] Attempts(JsonElement task) =>
        [.. task.GetProperty("attempts").EnumerateArray().Select(a =>
            $"{a.GetProperty("attempt").GetInt32()} {a.GetProperty("worker_id").GetString()} {a.GetProperty("outcome").GetString()}")];

    /// <summary>A task's attempt history, one "attempt outcome" each.</summary>
    private static string[] Outcomes(JsonElement task) =>
        [.. task.GetProperty("attempts").EnumerateArray().Select(a => $"{a.GetProperty("attempt").GetInt32()} {a.GetProperty("outcome").GetString()}")];

    /// <summary>The (task, attempt) of each "task started" line of a worker's JSON log.</summary>
    private static IEnumerable<(string, int)> StartedTasks(string log)
    {
        foreach (var line in log.Split('\n'))
        {
            if (!line.StartsWith('{') || !line.Contains("\"task started\"", StringComparison.Ordinal))
            {
                continue;
            }
            using var entry = JsonDocument.Parse(line);
            yield return (entry.RootElement.GetProperty("task_id").GetString()!, entry.RootElement.GetProperty("attempt").GetInt32());
        }
    }

    /// <summary>The sum of a metric's samples on one replica's own /metrics.</summary>
    private static async Task<double> MetricAsync(HttpClient client, string name) =>
        Prometheus.Sample(await client.GetStringAsync("/metrics"), name);
}
