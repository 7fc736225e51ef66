using TaskManager.Api.Domain;
using TaskManager.Api.Observability;

namespace TaskManager.Api.Coordination;

/// <summary>
/// Brings work and workers together on this replica: a worker's lease registers as waiting, tries
/// the store, waits for a wake-up when nothing fits and tries again; a submission hands its task to
/// a lease waiting here in its own store call; and whatever a lease leaves behind (more work,
/// tasks kept for a worker that has their model loaded) wakes the next waiter.
/// </summary>
public sealed class LeaseBroker(ITaskQueue queue, LeaseWaiters waiters, WorkerCapabilitiesCache capabilities, TaskTelemetry telemetry,
    TimeProvider time)
{
    /// <summary>
    /// A worker's lease: up to <paramref name="maxTasks"/> tasks, waiting up to
    /// <paramref name="wait"/> for work to arrive. Waits for a wake-up, not in a polling loop; the
    /// waiter is registered before each try, so a task queued between the try and the wait still
    /// wakes it. The result holds no task when the time ran out, and is
    /// <see cref="LeaseResult.Unknown"/> for a worker the store does not know.
    /// </summary>
    public async Task<LeaseResult> LeaseAsync(string workerId, int maxTasks, TimeSpan wait, CancellationToken aborted)
    {
        var deadline = time.GetUtcNow() + wait;
        while (true)
        {
            var (types, models) = capabilities.Get(workerId);
            using var waiter = waiters.Register(types, models, workerId, maxTasks);
            var result = await queue.LeaseAsync(workerId, maxTasks);
            if (Answers(result))
            {
                return result;
            }

            var remaining = deadline - time.GetUtcNow();
            if (remaining <= TimeSpan.Zero || await waiter.WaitAsync(remaining, aborted) is not { } wake)
            {
                return result;
            }
            // A submission on this replica leased this worker its task in its own store call.
            if (wake.Hand is not null && await wake.Hand.Answer is { } handed && Answers(handed))
            {
                return handed;
            }
            // Woken for a type this worker does not serve (its types were not known yet): pass it on.
            if (!result.WorkerTypes.Contains(wake.Type))
            {
                waiters.Notify(wake.Type);
            }
        }

        // True when a lease's result is the answer (tasks, or an unknown worker); false to wait on.
        bool Answers(LeaseResult result)
        {
            if (result.UnknownWorker)
            {
                return true;
            }
            Leased(workerId, result);
            return result.Tasks.Count > 0;
        }
    }

    /// <summary>
    /// Stores a submission (<see cref="ITaskQueue.SubmitAsync"/>); when a lease for its type waits
    /// on this replica, the task is leased to that worker in the same store call and the lease
    /// answers from it.
    /// </summary>
    public Task<SubmitResult> SubmitAsync(TaskRequest request, string? traceParent, string tenant, string? idempotencyKey,
        string? requestHash)
    {
        var hand = waiters.Claim(request.Type, request.Model);
        return hand is null
            ? queue.SubmitAsync(request, traceParent, tenant, idempotencyKey, requestHash)
            : HandOverAsync(hand);

        async Task<SubmitResult> HandOverAsync(LeaseWaiters.Hand hand)
        {
            SubmitResult result;
            try
            {
                result = await queue.SubmitAsync(request, traceParent, tenant, idempotencyKey, requestHash,
                    new WaitingLease(hand.WorkerId, hand.MaxTasks));
            }
            catch
            {
                // The lease looks for work again.
                hand.Give(null);
                throw;
            }
            hand.Give(result.Handed);
            return result;
        }
    }

    /// <summary>
    /// Stores many successful results of a worker (<see cref="ITaskQueue.CompleteManyAsync"/>) and,
    /// with <paramref name="maxTasks"/>, takes its next tasks in the same store call, never waiting.
    /// </summary>
    public async Task<(IReadOnlyList<StoreOutcome> Outcomes, LeaseResult? Lease)> CompleteManyAsync(
        string workerId, IReadOnlyList<CompletedTask> results, int maxTasks)
    {
        var (outcomes, lease) = await queue.CompleteManyAsync(results, maxTasks > 0 ? workerId : null, maxTasks);
        // The results are stored whatever the lease found; a worker the store has forgotten gets
        // no new tasks here and learns to register again from its next heartbeat.
        if (lease is { UnknownWorker: false })
        {
            Leased(workerId, lease);
        }
        return (outcomes, lease);
    }

    /// <summary>What every lease does with its answer: learns the worker's types and models, wakes the
    /// workers it left tasks for, passes the wake-up on when work remains, and counts the waits.</summary>
    private void Leased(string workerId, LeaseResult result)
    {
        capabilities.Set(workerId, result.WorkerTypes, result.WorkerModels);
        // Tasks left for a worker that has their model loaded: wake that worker.
        foreach (var (type, model) in result.LeftForOthers)
        {
            waiters.Notify(type, model);
        }
        // Work this lease left behind wakes the next waiter.
        if (result.Tasks.Count > 0 && result.MoreQueued)
        {
            foreach (var type in result.WorkerTypes)
            {
                waiters.Notify(type);
            }
        }
        foreach (var task in result.Tasks)
        {
            telemetry.Waited(task.Type, task.WaitMs);
        }
    }
}
