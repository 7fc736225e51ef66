using System.Text;
using System.Text.Json;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Platform;

/// <summary>The CLI tests share one packed and installed <c>tm</c> and one stack, and run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class CliCollection : ICollectionFixture<CliFixture>
{
    public const string Name = "Cli";
}

/// <summary>
/// <c>tm</c> as a user runs it: the packed dotnet tool, installed from its package, run as a
/// process against the real stack (Redis, the API, the scheduler, a sim worker). What it prints,
/// its JSON with <c>--json</c>, and its exit codes: 0 done, 1 the task failed or was canceled,
/// 2 bad usage, 3 refused by the API, 4 unreachable.
/// </summary>
[Trait("Category", "Platform")]
[Collection(CliCollection.Name)]
public sealed class CliTests(CliFixture cli)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private FleetFixture Fleet => cli.Fleet;

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Login_KeepsAProfileReadableByItsOwnerOnly_ThatLaterCommandsUse_AndTheEnvironmentOverrides()
    {
        var home = cli.NewHome();
        var noEnvironment = new Dictionary<string, string?> { ["TASKMANAGER_URL"] = null, ["TASKMANAGER_API_KEY"] = null };

        var before = await cli.TmAsync(["ls"], noEnvironment, home);
        Assert.True(before.ExitCode == 2, before.ToString());
        Assert.Contains("tm login", before.Stderr);

        var wrong = await cli.TmAsync(["login", "--url", Fleet.Api.BaseAddress.ToString(), "--key", "not-a-key"], noEnvironment, home);
        Assert.True(wrong.ExitCode == 3, wrong.ToString());
        var config = Path.Combine(home, ".config", "taskmanager", "config.json");
        Assert.False(File.Exists(config), "a key the API refused was kept");

        var login = await cli.TmAsync(["login", "--url", Fleet.Api.BaseAddress.ToString(), "--key", Credentials.ClientKey], noEnvironment, home);
        Assert.True(login.ExitCode == 0, login.ToString());
        Assert.Contains($"a client key of the tenant {Credentials.TenantA}", login.Stdout);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(config));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(config)!));
        var saved = JsonDocument.Parse(File.ReadAllText(config)).RootElement;
        Assert.Equal(Credentials.ClientKey, saved.GetProperty("profiles").GetProperty("default").GetProperty("key").GetString());

        // A second profile, with the admin key; the default stays the first.
        var admin = await cli.TmAsync(["login", "--profile", "ops", "--url", Fleet.Api.BaseAddress.ToString(), "--key", Credentials.AdminKey, "--json"], noEnvironment, home);
        Assert.True(admin.ExitCode == 0, admin.ToString());
        Assert.Equal("ops", JsonDocument.Parse(admin.Stdout).RootElement.GetProperty("profile").GetString());
        Assert.Equal("admin", JsonDocument.Parse(admin.Stdout).RootElement.GetProperty("role").GetString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(config));

        // The default profile (tenant A) may not pause a queue; the ops profile (admin) may.
        var asClient = await cli.TmAsync(["resume", "image_to_text"], noEnvironment, home);
        Assert.True(asClient.ExitCode == 3, asClient.ToString());
        Assert.Contains("403", asClient.Stderr);
        var asOps = await cli.TmAsync(["--profile", "ops", "resume", "image_to_text", "--json"], noEnvironment, home);
        Assert.True(asOps.ExitCode == 0, asOps.ToString());
        Assert.False(JsonDocument.Parse(asOps.Stdout).RootElement.GetProperty("paused").GetBoolean());

        // TASKMANAGER_API_KEY overrides the profile's key; TASKMANAGER_URL its URL.
        var overridden = await cli.TmAsync(["ls"], new Dictionary<string, string?> { ["TASKMANAGER_URL"] = null, ["TASKMANAGER_API_KEY"] = "not-a-key" }, home);
        Assert.True(overridden.ExitCode == 3, overridden.ToString());
        Assert.Contains("401", overridden.Stderr);
        var elsewhere = await cli.TmAsync(["ls"], new Dictionary<string, string?> { ["TASKMANAGER_URL"] = ClosedPortUrl(), ["TASKMANAGER_API_KEY"] = null }, home);
        Assert.True(elsewhere.ExitCode == 4, elsewhere.ToString());

        var unknown = await cli.TmAsync(["--profile", "nope", "ls"], noEnvironment, home);
        Assert.True(unknown.ExitCode == 2, unknown.ToString());

        // XDG_CONFIG_HOME, when set, is where the profiles go instead.
        var xdg = Path.Combine(cli.NewHome(), "xdg");
        var elsewhereLogin = await cli.TmAsync(["login", "--url", Fleet.Api.BaseAddress.ToString(), "--key", Credentials.ClientKey],
            new Dictionary<string, string?> { ["TASKMANAGER_URL"] = null, ["TASKMANAGER_API_KEY"] = null, ["XDG_CONFIG_HOME"] = xdg }, home);
        Assert.True(elsewhereLogin.ExitCode == 0, elsewhereLogin.ToString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(xdg, "taskmanager", "config.json")));
    }

    [Fact]
    public async Task SubmitFollow_PrintsTheChunksWhileTheTaskRuns_ThenItsFinalStatus()
    {
        var run = await cli.TmAsync("submit", "llm", "--prompt", "tell me a story", "--follow",
            "--metadata", """sim={"duration_ms":3000,"chunks":6}""", "--metadata", "origin=cli-test", "run=42", "dry=false", "--metadata", """{"tags":["a"]}""");

        Assert.True(run.ExitCode == 0, run.ToString());
        var final = run.StderrLines.Single(l => l.Text.StartsWith("tm: succeeded in ", StringComparison.Ordinal));
        var id = IdIn(run.StderrLines[0].Text);
        var task = await Fleet.GetTaskAsync(id);
        Assert.Equal("succeeded", task.GetProperty("status").GetString());
        // --metadata: KEY=VALUE pairs, a value that parses as JSON taken as JSON, and JSON objects, merged.
        var metadata = task.GetProperty("metadata");
        Assert.Equal("cli-test", metadata.GetProperty("origin").GetString());
        Assert.Equal(42, metadata.GetProperty("run").GetInt32());
        Assert.False(metadata.GetProperty("dry").GetBoolean());
        Assert.Equal("a", metadata.GetProperty("tags")[0].GetString());
        Assert.Equal(6, metadata.GetProperty("sim").GetProperty("chunks").GetInt32());
        // The text on stdout is the task's output, made of the chunks as they came.
        Assert.Equal(task.GetProperty("output").GetProperty("text").GetString(), run.Stdout.TrimEnd('\n'));

        // Chunks arrived in several reads, the first of them before the task ended and before tm printed its end.
        var completedAt = task.GetProperty("completed_at").GetDateTimeOffset();
        var chunkReads = run.StdoutReads.Where(r => r.Text.Trim().Length > 0).ToArray();
        Assert.True(chunkReads.Length >= 2, $"the text came in {chunkReads.Length} read(s): {run}");
        Assert.True(chunkReads[0].At < completedAt, $"first chunk read at {chunkReads[0].At:O}, the task completed at {completedAt:O}");
        Assert.True(chunkReads[0].At < final.At, $"first chunk read at {chunkReads[0].At:O}, the final status line at {final.At:O}");
        Assert.Contains(run.StderrLines, l => l.Text.StartsWith("tm: running", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SubmitFollow_ShowsProgress_AndWithJson_PrintsEachEventThenTheFinalTask()
    {
        var run = await cli.TmAsync("submit", "sd", "--prompt", "a lighthouse", "--follow", "--json", "--metadata", """{"sim":{"duration_ms":1500}}""");

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        // The created task: queued, or already running when a worker's lease was waiting for it.
        Assert.Contains(lines[0].GetProperty("status").GetString(), (string[])["queued", "running"]);
        var events = lines[1..^1];
        Assert.Contains(events, e => e.GetProperty("event").GetString() == "progress");
        Assert.Equal("succeeded", events[^1].GetProperty("data").GetProperty("status").GetString());
        Assert.Equal("succeeded", lines[^1].GetProperty("status").GetString()); // the final task
        Assert.EndsWith("/artifacts/image-0.png", lines[^1].GetProperty("output").GetProperty("images")[0].GetProperty("url").GetString());

        // Without --json, on a stderr that is not a terminal, progress is a line each tenth.
        var human = await cli.TmAsync("submit", "sd", "--prompt", "a lighthouse", "--follow", "--metadata", """{"sim":{"duration_ms":1500}}""");
        Assert.True(human.ExitCode == 0, human.ToString());
        Assert.Contains(human.StderrLines, l => l.Text.StartsWith("progress: ", StringComparison.Ordinal) && l.Text.Contains('█'));
    }

    [Fact]
    public async Task SubmitFollow_OnCtrlC_CancelsTheTask_WithCancelOnInterrupt_ElseLeavesItRunning()
    {
        // Told to cancel on Ctrl+C (there is no terminal to ask on): the task ends canceled, and so exits tm, with 1.
        var canceled = await FollowALongTaskAndInterruptAsync("--cancel-on-interrupt");
        Assert.True(canceled.ExitCode == 1, canceled.ToString());
        var id = IdIn(canceled.StderrLines[0].Text);
        Assert.Equal("canceled", (await Fleet.GetTaskAsync(id)).GetProperty("status").GetString());
        Assert.Contains("canceling task", canceled.Stderr);

        // Not told: the task runs on, and tm says how to follow it again.
        var left = await FollowALongTaskAndInterruptAsync();
        Assert.True(left.ExitCode == 130, left.ToString());
        id = IdIn(left.StderrLines[0].Text);
        Assert.Equal("running", (await Fleet.GetTaskAsync(id)).GetProperty("status").GetString());
        Assert.Contains($"tm events {id}", left.Stderr);
        var cancel = await cli.TmAsync("cancel", id, "--json");
        Assert.True(cancel.ExitCode == 0, cancel.ToString());
    }

    [Fact]
    public async Task SubmitFollow_OnATerminal_CtrlCAsksWhetherToCancel_AndYesCancelsTheTask()
    {
        await using var tm = cli.StartOnATerminal(["submit", "llm", "--prompt", "a long one", "--follow",
            "--metadata", """sim={"duration_ms":60000,"chunks":600}"""]);
        await tm.WaitForStdoutAsync(text => text.Contains("running (attempt 1)", StringComparison.Ordinal), Timeout, "the task to start");
        var id = IdIn(tm.Stdout);

        await tm.TypeAsync("\u0003");
        await tm.WaitForStdoutAsync(text => text.Contains($"Cancel task {id}? [y/N]", StringComparison.Ordinal), Timeout, "the question");
        Assert.Equal("running", (await Fleet.GetTaskAsync(id)).GetProperty("status").GetString()); // nothing done before the answer
        await tm.TypeAsync("y\n");
        var run = await tm.WaitForExitAsync(Timeout);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Equal("canceled", (await Fleet.GetTaskAsync(id)).GetProperty("status").GetString());
        Assert.Contains("tm: canceled", run.Stdout);
    }

    private async Task<TmRun> FollowALongTaskAndInterruptAsync(params string[] options)
    {
        await using var tm = cli.Start(["submit", "llm", "--prompt", "a long one", "--follow", .. options,
            "--metadata", """sim={"duration_ms":60000,"chunks":600}"""]);
        await tm.WaitForStdoutAsync(text => text.Length > 0, Timeout, "the first chunk");
        tm.Interrupt();
        return await tm.WaitForExitAsync(Timeout);
    }

    [Fact]
    public async Task SubmitWait_Exits0WhenTheTaskSucceeds_And1WhenItFails()
    {
        var ok = await cli.TmAsync("submit", "tts", "--text", "hello", "--wait", "--json");
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Equal("succeeded", JsonDocument.Parse(ok.Stdout).RootElement.GetProperty("status").GetString());

        var failed = await cli.TmAsync("submit", "llm", "--prompt", "x", "--max-attempts", "1", "--wait", "--metadata", """sim={"fail":"fatal"}""");
        Assert.True(failed.ExitCode == 1, failed.ToString());
        Assert.Contains("failed", failed.Stdout);
        Assert.Contains("sim_failure", failed.Stdout);

        // tm get --wait and tm events exit the same way.
        var id = IdIn(failed.Stdout);
        Assert.Equal(1, (await cli.TmAsync("get", id, "--wait")).ExitCode);
        Assert.Equal(1, (await cli.TmAsync("events", id)).ExitCode);
        Assert.Equal(0, (await cli.TmAsync("get", id)).ExitCode);
    }

    [Theory]
    [InlineData("bogus")]
    [InlineData("submit", "llm", "--no-such-option")]
    [InlineData("submit", "video", "--prompt", "x")]
    [InlineData("submit", "llm", "--priority", "high")]
    [InlineData("submit", "llm", "--input", "{not json")]
    [InlineData("submit", "llm", "--metadata", "novalue")]
    [InlineData("submit", "tts", "--prompt", "tts takes --text")]
    [InlineData("submit", "llm", "--prompt", "x", "--wait", "--follow")]
    [InlineData("get")]
    public async Task BadUsage_Exits2_WithTheReasonOnStderr(params string[] args)
    {
        var run = await cli.TmAsync(args);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.StartsWith("error: ", run.Stderr);
        Assert.Equal("", run.Stdout);
    }

    [Fact]
    public async Task NoCommand_PrintsTheHelpOnStderr_AndExits2()
    {
        var run = await cli.TmAsync(Array.Empty<string>());

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains("submit", run.Stderr);
        Assert.Contains("--json", run.Stderr);
        Assert.Equal("", run.Stdout);
    }

    [Fact]
    public async Task ARefusal_Exits3_WithTheProblemsTitleAndEachFieldsErrorOnStderr()
    {
        var invalid = await cli.TmAsync("submit", "llm", "--prompt", "x", "--priority", "12", "--param", "max_tokens=0");
        Assert.True(invalid.ExitCode == 3, invalid.ToString());
        Assert.Contains("error: 400 The request is not valid.", invalid.Stderr);
        Assert.Contains(invalid.StderrLines, l => l.Text.StartsWith("  priority: ", StringComparison.Ordinal));
        Assert.Contains(invalid.StderrLines, l => l.Text.StartsWith("  input.max_tokens: ", StringComparison.Ordinal));
        Assert.Equal("", invalid.Stdout);

        // With --json, the ProblemDetails as the API sent it, for a script to read.
        var invalidJson = await cli.TmAsync("submit", "llm", "--prompt", "x", "--priority", "12", "--json");
        Assert.True(invalidJson.ExitCode == 3, invalidJson.ToString());
        var problem = JsonDocument.Parse(invalidJson.Stderr).RootElement;
        Assert.Equal(400, problem.GetProperty("status").GetInt32());
        Assert.True(problem.GetProperty("errors").TryGetProperty("priority", out _));

        var missing = await cli.TmAsync("get", new string('0', 32));
        Assert.True(missing.ExitCode == 3, missing.ToString());
        Assert.Contains("error: 404 Task not found.", missing.Stderr);

        var badKey = await cli.TmAsync(["workers"], new Dictionary<string, string?> { ["TASKMANAGER_API_KEY"] = "wrong" });
        Assert.True(badKey.ExitCode == 3, badKey.ToString());

        var notAdmin = await cli.TmAsync("pause", "llm");
        Assert.True(notAdmin.ExitCode == 3, notAdmin.ToString());
        Assert.Contains("403", notAdmin.Stderr);
    }

    [Fact]
    public async Task AnUnreachableApi_Exits4()
    {
        foreach (var args in new[] { new[] { "ls" }, ["submit", "llm", "--prompt", "x", "--follow"], ["events", new string('0', 32)], ["workers", "--json"] })
        {
            var run = await cli.TmAsync(args, new Dictionary<string, string?> { ["TASKMANAGER_URL"] = ClosedPortUrl() });
            Assert.True(run.ExitCode == 4, $"{string.Join(' ', args)}: {run}");
            Assert.Contains("Cannot reach the API", run.Stderr);
        }
    }

    [Fact]
    public async Task SubmitFile_Of5000Lines_SendsFiveBatches_ShowsItsProgress_AndPrintsEveryId()
    {
        // Tenant B's, of a type the fixture's worker does not take: they wait in the queue and disturb no other test.
        var file = Path.Combine(cli.NewHome(), "tasks.jsonl");
        var lines = Enumerable.Range(0, 5000).Select(i => $$$"""{"type":"image_to_text","input":{"image":"aGVsbG8="},"metadata":{"line":{{{i}}}}}""");
        await File.WriteAllLinesAsync(file, lines);

        var run = await cli.TmAsync(["submit", "--file", file], new Dictionary<string, string?> { ["TASKMANAGER_API_KEY"] = Credentials.OtherClientKey });

        Assert.True(run.ExitCode == 0, run.ToString()[..Math.Min(2000, run.ToString().Length)]);
        var ids = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5000, ids.Length);
        Assert.Equal(5000, ids.Distinct().Count());
        Assert.Equal(["submitted 1000/5000", "submitted 2000/5000", "submitted 3000/5000", "submitted 4000/5000", "submitted 5000/5000"],
            run.StderrLines.Select(l => l.Text));
        // In the file's order: line i is the i-th id.
        using var tenantB = Fleet.Api.ClientWith(Credentials.OtherClientKey);
        var last = await (await tenantB.GetAsync($"/api/tasks/{ids[^1]}")).JsonAsync();
        Assert.Equal(4999, last.GetProperty("metadata").GetProperty("line").GetInt32());

        // ls reads as many pages (of 100 at most) as --limit needs.
        var listed = await cli.TmAsync(["ls", "--limit", "250", "--json"], new Dictionary<string, string?> { ["TASKMANAGER_API_KEY"] = Credentials.OtherClientKey });
        Assert.True(listed.ExitCode == 0, listed.ToString());
        var items = JsonDocument.Parse(listed.Stdout).RootElement.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("id").GetString()).ToArray();
        Assert.Equal(250, items.Length);
        Assert.Equal(ids.Reverse().Take(250), items); // newest first: the file's last lines

        // A bad line is refused alone, with its line number; the others are created.
        await File.WriteAllLinesAsync(file, [lines.First(), """{"type":"llm","input":{}}""", lines.First()]);
        var mixed = await cli.TmAsync(["submit", "--file", file], new Dictionary<string, string?> { ["TASKMANAGER_API_KEY"] = Credentials.OtherClientKey });
        Assert.True(mixed.ExitCode == 3, mixed.ToString());
        Assert.Equal(2, mixed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains(mixed.StderrLines, l => l.Text.StartsWith("error: line 2: 400", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Events_ResumeAfterADroppedConnection_WithNoEventLostOrRepeated()
    {
        await using var relay = new TcpRelay(Fleet.Api.BaseAddress);
        var id = await Fleet.SubmitAsync("""{"type":"llm","input":{"prompt":"resume me"},"metadata":{"sim":{"duration_ms":3000,"chunks":12}}}""");

        await using var tm = cli.Start(["events", id, "--json"], new Dictionary<string, string?> { ["TASKMANAGER_URL"] = relay.Address.ToString() });
        await tm.WaitForStdoutAsync(text => text.Contains("\"chunk\"", StringComparison.Ordinal), Timeout, "a chunk event");
        relay.CutAll();
        var run = await tm.WaitForExitAsync(Timeout);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.True(relay.Accepted >= 2, $"tm connected {relay.Accepted} time(s)");
        Assert.Contains("resuming after event", run.Stderr);
        var events = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        // Every event once, in order: the ids count up from 0 without a gap.
        Assert.Equal(Enumerable.Range(0, events.Length).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            events.Select(e => e.GetProperty("id").GetString()));
        Assert.Equal(12, events.Count(e => e.GetProperty("event").GetString() == "chunk"));
        Assert.Equal("succeeded", events[^1].GetProperty("data").GetProperty("status").GetString());

        // After the final event there is nothing more to follow (the API answers 204): tm ends at once, by the task's status.
        var after = await cli.TmAsync("events", id, "--after", events[^1].GetProperty("id").GetString()!, "--json");
        Assert.True(after.ExitCode == 0, after.ToString());
        Assert.Equal("", after.Stdout);
    }

    [Fact]
    public async Task EveryTaskCommand_WithJson_PrintsTheApisJson()
    {
        var submitted = Json(await cli.TmAsync("submit", "sd", "--prompt", "a cat", "--priority", "7", "--timeout", "60", "--max-attempts", "2",
            "--start-deadline", "120", "--model", "sd-sim", "--param", "num_images=2", "--json"));
        var id = submitted.GetProperty("id").GetString()!;
        Assert.Equal(7, submitted.GetProperty("priority").GetInt32());
        Assert.Equal(60, submitted.GetProperty("timeout_seconds").GetInt32());
        Assert.Equal(2, submitted.GetProperty("max_attempts").GetInt32());
        Assert.Equal("sd-sim", submitted.GetProperty("model").GetString());
        Assert.Equal(2, submitted.GetProperty("input").GetProperty("num_images").GetInt32());

        var got = Json(await cli.TmAsync("get", id, "--wait", "--json"));
        Assert.Equal("succeeded", got.GetProperty("status").GetString());

        var listed = Json(await cli.TmAsync("ls", "--type", "sd", "--status", "succeeded", "--limit", "150", "--json"));
        Assert.Contains(listed.GetProperty("items").EnumerateArray(), t => t.GetProperty("id").GetString() == id);
        Assert.All(listed.GetProperty("items").EnumerateArray(), t => Assert.Equal("sd", t.GetProperty("type").GetString()));
        var ofModel = Json(await cli.TmAsync("ls", "--model", "sd-sim", "--json"));
        Assert.Contains(ofModel.GetProperty("items").EnumerateArray(), t => t.GetProperty("id").GetString() == id);
        Assert.All(ofModel.GetProperty("items").EnumerateArray(), t => Assert.Equal("sd-sim", t.GetProperty("model").GetString()));

        var events = await cli.TmAsync("events", id, "--json");
        Assert.True(events.ExitCode == 0, events.ToString());
        Assert.All(events.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => JsonDocument.Parse(l));

        var image = Path.Combine(cli.NewHome(), "cat.png");
        var artifact = Json(await cli.TmAsync("artifact", id, "image-1.png", "-o", image, "--json"));
        Assert.Equal("image/png", artifact.GetProperty("content_type").GetString());
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(image)[..4]);
        Assert.Equal(new FileInfo(image).Length, artifact.GetProperty("bytes").GetInt64());

        var waiting = Json(await cli.TmAsync("submit", "image_to_text", "--image", image, "--json"));
        var canceled = Json(await cli.TmAsync("cancel", waiting.GetProperty("id").GetString()!, "--json"));
        Assert.Equal("canceled", canceled.GetProperty("status").GetString());
        var retried = Json(await cli.TmAsync("retry", waiting.GetProperty("id").GetString()!, "--json"));
        Assert.Equal("queued", retried.GetProperty("status").GetString());
        var notFinal = await cli.TmAsync("rm", waiting.GetProperty("id").GetString()!);
        Assert.True(notFinal.ExitCode == 3, notFinal.ToString()); // 409: a queued task is not removed
        Assert.Contains("409", notFinal.Stderr);
        Json(await cli.TmAsync("cancel", waiting.GetProperty("id").GetString()!, "--json"));

        var removed = Json(await cli.TmAsync("rm", id, "--json"));
        Assert.True(removed.GetProperty("deleted").GetBoolean());
        Assert.Equal(3, (await cli.TmAsync("get", id)).ExitCode);
    }

    [Fact]
    public async Task EveryFleetCommand_WithJson_PrintsTheApisJson()
    {
        var workers = Json(await cli.TmAsync("workers", "--json"));
        var worker = workers.GetProperty("workers").EnumerateArray().Single(w => w.GetProperty("name").GetString() == CliFixture.WorkerName);
        Assert.Equal(81920, worker.GetProperty("gpus")[0].GetProperty("memory_total_mb").GetInt32());

        var paused = Json(await cli.AdminTmAsync("pause", "tts", "--json"));
        Assert.True(paused.GetProperty("paused").GetBoolean());
        try
        {
            var queues = Json(await cli.TmAsync("queues", "--json"));
            Assert.True(queues.GetProperty("tts").GetProperty("paused").GetBoolean());
            Assert.False(queues.GetProperty("llm").GetProperty("paused").GetBoolean());
        }
        finally
        {
            var resumed = Json(await cli.AdminTmAsync("resume", "tts", "--json"));
            Assert.False(resumed.GetProperty("paused").GetBoolean());
        }

        var stats = Json(await cli.TmAsync("stats", "--json"));
        Assert.True(stats.GetProperty("run_ms").TryGetProperty("llm", out _));
        Assert.True(stats.GetProperty("finished_per_minute").TryGetProperty("last_minute", out _));

        // A worker of its own to drain, named rather than by id.
        Fleet.StartWorker("cli-drained", environment: new Dictionary<string, string> { ["TASKMANAGER_TASK_TYPES"] = "sd" });
        var drainedId = await Fleet.WorkerIdAsync("cli-drained");
        var drained = Json(await cli.AdminTmAsync("drain", "cli-drained", "--json"));
        Assert.Equal(drainedId, drained.GetProperty("id").GetString());
        Assert.Equal("draining", drained.GetProperty("status").GetString());
        Assert.Equal(3, (await cli.TmAsync("drain", drainedId)).ExitCode); // a client key may not
    }

    [Fact]
    public async Task HumanOutput_ShowsTablesWithGpuMemoryBars_AndBarCharts()
    {
        var workers = await cli.TmAsync("workers");
        Assert.True(workers.ExitCode == 0, workers.ToString());
        var row = workers.Stdout.Split('\n').Single(l => l.Contains(CliFixture.WorkerName, StringComparison.Ordinal));
        Assert.Contains("healthy", row);
        Assert.Contains("H100 80GB ███░░░░░░░ 20.0/80.0 GiB", row); // 81920 MB with 61440 free: a quarter used

        var stats = await cli.TmAsync("stats");
        Assert.True(stats.ExitCode == 0, stats.ToString());
        Assert.Contains("finished per minute", stats.Stdout);
        Assert.Contains("tasks by status", stats.Stdout);
        Assert.Contains("RUN p50", stats.Stdout);

        var queues = await cli.TmAsync("queues");
        Assert.Contains(queues.Stdout.Split('\n'), l => l.Contains("llm", StringComparison.Ordinal) && l.Contains("running", StringComparison.Ordinal));
    }

    [Fact]
    public async Task LsWatch_ShowsATaskSubmittedMeanwhile_AndEndsOnCtrlC_With0()
    {
        await using var tm = cli.Start(["ls", "--watch", "--interval", "0.3", "--json", "--type", "image_to_text"]);
        await tm.WaitForStdoutAsync(text => text.Contains('\n'), Timeout, "the first listing");
        var id = await Fleet.SubmitAsync("""{"type":"image_to_text","input":{"image":"aGVsbG8="}}""");

        await tm.WaitForStdoutAsync(text => text.Contains(id, StringComparison.Ordinal), Timeout, "the new task in a later listing");
        tm.Interrupt();
        var run = await tm.WaitForExitAsync(Timeout);

        Assert.True(run.ExitCode == 0, run.ToString());
        var listings = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.True(listings.Length >= 2);
        Assert.DoesNotContain(listings[0].GetProperty("items").EnumerateArray(), t => t.GetProperty("id").GetString() == id);
    }

    [Fact]
    public async Task Completion_PrintsAScriptForBash_AndTheSuggestDirectiveCompletesCommandsAndOptions()
    {
        var script = await cli.TmAsync("completion", "bash");
        Assert.True(script.ExitCode == 0, script.ToString());
        Assert.Contains("complete -o default -F _tm_complete tm", script.Stdout);

        var commands = await cli.TmAsync("[suggest:7]", "tm subm");
        Assert.Equal(["submit"], commands.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var options = await cli.TmAsync("[suggest:19]", "tm submit llm --fol");
        Assert.Contains("--follow", options.Stdout.Split('\n'));
        var types = await cli.TmAsync("[suggest:10]", "tm submit ");
        Assert.Contains("image_to_text", types.Stdout.Split('\n'));
    }

    private static JsonElement Json(TmRun run)
    {
        Assert.True(run.ExitCode == 0, run.ToString());
        return JsonDocument.Parse(run.Stdout).RootElement.Clone();
    }

    /// <summary>The first task id (32 lowercase hex digits) in what tm printed.</summary>
    private static string IdIn(string text) =>
        text.Split([' ', '\n', '"', ',', ':', '.'], StringSplitOptions.RemoveEmptyEntries)
            .First(w => w.Length == 32 && w.All(char.IsAsciiHexDigitLower));

    private static string ClosedPortUrl() => $"http://127.0.0.1:{RedisServer.FreePort()}";
}
