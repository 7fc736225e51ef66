using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TaskManager.Api.Domain;

namespace TaskManager.Api.Storage;

/// <summary>Workers in Redis: registration, heartbeats, drain and the fleet's list; one script call each.</summary>
public sealed class RedisWorkerRegistry(RedisScripts scripts, RedisKeys keys, TimeProvider time, IOptions<TaskManagerOptions> options)
    : RedisStore(scripts, keys, time, options), IWorkerRegistry
{
    public async Task<string> RegisterAsync(WorkerRegistration registration)
    {
        var id = "w_" + Guid.CreateVersion7(Time.GetUtcNow()).ToString("N");
        var state = registration.State ?? new WorkerState("{}", 0, [], []);
        await Scripts.RunAsync(Script.Register, [Keys.Worker(id), Keys.Workers],
            [
                id, NowMs, registration.Name, string.Join(',', registration.TaskTypes), registration.CapabilitiesJson,
                registration.Capacity, state.GpuFreeMb, GpuNames(state), string.Join(',', state.Models),
            ]).ConfigureAwait(false);
        return id;
    }

    public async Task<HeartbeatResult?> HeartbeatAsync(string workerId, WorkerState state, IReadOnlyList<(string TaskId, string LeaseToken)> running,
        bool holdIfIdle = false)
    {
        var values = new RedisValue[8 + (running.Count * 2)];
        values[0] = workerId;
        values[1] = NowMs;
        values[2] = Options.LeaseTtlSeconds * 1000L;
        values[3] = state.Json;
        values[4] = state.GpuFreeMb;
        values[5] = GpuNames(state);
        values[6] = string.Join(',', state.Models);
        values[7] = holdIfIdle ? "1" : "0";
        for (var i = 0; i < running.Count; i++)
        {
            values[8 + (2 * i)] = running[i].TaskId;
            values[9 + (2 * i)] = running[i].LeaseToken;
        }
        return Replies.ReadHeartbeat(await Scripts.RunAsync(Script.Heartbeat, [Keys.Worker(workerId), Keys.Workers, Keys.Leases], values)
            .ConfigureAwait(false));
    }

    public async Task TouchWorkersAsync(IReadOnlyCollection<string> workerIds) =>
        await Scripts.RunAsync(Script.TouchWorkers, [Keys.Workers], [NowMs, .. workerIds.Select(id => (RedisValue)id)]).ConfigureAwait(false);

    public async Task<bool> DrainAsync(string workerId) =>
        (int)await Scripts.RunAsync(Script.Drain, [Keys.Worker(workerId)], [workerId]).ConfigureAwait(false) == 1;

    public async Task<IReadOnlyList<WorkerRecord>> ListWorkersAsync(int max) =>
        ((RedisResult[])(await Scripts.RunAsync(Script.Workers, [Keys.Workers], [max]).ConfigureAwait(false))!)
            .Select(r => RedisRecords.Worker((RedisResult[])r!)).ToArray();

    // Lowercase and one a line: the lease script matches a pattern against any of them.
    private static string GpuNames(WorkerState state) => string.Join('\n', state.GpuNames.Select(n => n.ToLowerInvariant()));
}
