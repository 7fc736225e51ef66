using StackExchange.Redis;
using TaskManager.Api.Domain;
using TaskManager.Api.Storage;
using TaskManager.Tests.Infrastructure;

namespace TaskManager.Tests.Storage;

/// <summary>
/// What the scripts share with the C# is generated from it: run in Redis's own Lua, the prelude's
/// key functions build the keys RedisKeys builds, its reply shapes list the fields the C# reads
/// in the same order, and its task values sit where the C# puts them.
/// </summary>
[Trait("Category", "Storage")]
public sealed class GeneratedLuaTests(RedisServer redis) : IClassFixture<RedisServer>
{
    private static readonly RedisKeys Keys = new("{gen}:");

    private async Task<RedisResult> EvalAsync(string body) =>
        await redis.Db.ScriptEvaluateAsync("local KEYS, ARGV\n" + LuaLibrary.Prelude(Keys) + body);

    [Fact]
    public async Task KeyFunctions_BuildTheKeysTheCSharpBuilds()
    {
        var lua = (string[])(await EvalAsync("""
            return {task_key('t1'), queue_key('llm'), index_key('acme', 'queued', 'sd'), idem_key('acme', 'k'),
              LEASES, DEADLINES, SCHEDULED, FINISHED, attempts_key('t1'), OUTBOX, events_key('t1'), artifacts_key('t1'),
              artifact_key('t1', 'a.png'), model_key('m'), PAUSED, worker_key('w1'), WORKERS, STATS_TOTALS, NOTIFY, CANCELS,
              event_channel('t1'), webhook_secret_key('acme')}
            """))!;

        Assert.Equal(
        [
            Keys.Task("t1"), Keys.Queue("llm"), Keys.Index("acme", "queued", "sd"), Keys.Idempotency("acme", "k"), Keys.Leases,
            Keys.Deadlines, Keys.Scheduled, Keys.Finished, Keys.Attempts("t1"), Keys.Outbox, Keys.Events("t1"), Keys.Artifacts("t1"),
            Keys.Artifact("t1", "a.png"), Keys.ModelWorkers("m"), Keys.Paused, Keys.Worker("w1"), Keys.Workers, Keys.StatsTotals,
            Keys.NotifyChannel, Keys.CancelChannel, Keys.EventChannel("t1"), Keys.WebhookSecret("acme"),
        ], lua);
    }

    [Theory]
    [InlineData(typeof(Replies.Outcome), "OUTCOME")]
    [InlineData(typeof(Replies.Lease), "LEASE")]
    [InlineData(typeof(Replies.LeasedTask), "LEASED_TASK")]
    [InlineData(typeof(Replies.Submit), "SUBMIT")]
    [InlineData(typeof(Replies.Stats), "STATS")]
    public async Task EachReplyShape_PutsItsFields_InTheOrderTheCSharpReadsThem(Type shape, string name)
    {
        var fields = Enum.GetNames(shape).Select(n => string.Concat(n.Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()))).ToArray();

        // Each field given its own name as its value comes back at its place.
        var named = (string[])(await EvalAsync($"return REPLY.{name}({string.Join(", ", fields.Select(f => $"'{f}'"))})"))!;
        Assert.Equal(fields, named);
        // A field left out (nil, or false as HMGET reads a missing one) is an empty string.
        var built = (RedisResult[])(await EvalAsync($"return REPLY.{name}(false{string.Concat(Enumerable.Repeat(", nil", fields.Length - 2))}, 'last')"))!;
        Assert.Equal([.. Enumerable.Repeat("", fields.Length - 1), "last"], built.Select(r => (string)r!));
    }

    [Theory]
    [InlineData("read_result")]
    [InlineData("read_attempt")]
    [InlineData("read_retry")]
    [InlineData("read_report")]
    [InlineData("read_candidate")]
    public async Task EachFieldReader_NamesEveryFieldItReads_AfterItself(string reader)
    {
        // A hash whose every field holds its own name; the reader's table must say each name of
        // what it asked for, as many as it asked for.
        string[] fields =
        [
            "type", "status", "priority", "created", "input", "timeout", "max_attempts", "tenant", "model", "metadata", "webhook",
            "trace", "req_mem", "req_gpu", "attempt", "worker", "token", "started", "completed", "queued_at", "artifact_bytes",
            "rp", "w", "start_by", "webhook_events",
        ];
        await redis.Db.HashSetAsync("{gen}:reader", fields.Select(f => new HashEntry(f, f)).ToArray());

        var answer = (RedisResult[])(await redis.Db.ScriptEvaluateAsync(LuaLibrary.SharedCode(Keys) + $$"""
            clear_deferred()
            local asked
            local read = call
            call = function(command, key, ...) asked = select('#', ...); return read(command, key, ...) end
            local t = {{reader}}('{gen}:reader')
            local entries, wrong = 0, {}
            for name, value in pairs(t) do
              entries = entries + 1
              if name ~= value then wrong[#wrong + 1] = name .. '=' .. tostring(value) end
            end
            return {asked, entries, table.concat(wrong, ',')}
            """))!;

        Assert.Equal("", (string)answer[2]!);
        Assert.Equal((long)answer[0], (long)answer[1]);
    }

    [Fact]
    public async Task TaskValues_SitWhereTheCSharpPutsThem()
    {
        var values = new List<RedisValue>();
        TaskValues.Add(values, "id-1", new TaskRequest("sd", "{}", "m", 7, 60, 2, """{"a":1}""", "https://h/x",
            new TaskRequirements(100, "L4"), 30, ["start", "completed"]), "trace");

        var lua = (string[])(await redis.Db.ScriptEvaluateAsync("local KEYS, ARGV = KEYS, ARGV\n" + LuaLibrary.Prelude(Keys) + """
            local out = {}
            for _, name in ipairs({'id', 'type', 'priority', 'input', 'timeout', 'max_attempts', 'model', 'metadata', 'webhook',
                'webhook_events', 'start_deadline', 'trace', 'req_mem', 'req_gpu'}) do out[#out + 1] = ARGV[1 + TASK_VALUE[name]] end
            out[#out + 1] = tostring(TASK_VALUES)
            return out
            """, values: [.. values]))!;

        Assert.Equal(["id-1", "sd", "7", "{}", "60", "2", "m", """{"a":1}""", "https://h/x", "start,completed", "30", "trace", "100", "L4", "14"], lua);
    }

    [Fact]
    public async Task QueueScores_PutAHigherPriorityFirst_WhateverItsAge()
    {
        var scores = (string[])(await EvalAsync($"return {{queue_score(9, 2000000000000), queue_score(8, 1700000000000), tostring(PRIORITY_BAND)}}"))!;

        Assert.True(decimal.Parse(scores[0]) < decimal.Parse(scores[1]), string.Join(", ", scores));
        Assert.Equal(QueueOrder.PriorityBand.ToString(System.Globalization.CultureInfo.InvariantCulture), scores[2]);
    }
}
