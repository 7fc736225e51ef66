namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// The tests that assert on elapsed real time (a wake-up under a second, a cancel within its
/// grace, a heartbeat held no longer than half a lease, a run time at least the work it did) run
/// alone, after the parallel ones, so that a busy two-core machine does not decide their outcome.
/// No test outside this collection asserts on the wall clock: elsewhere a test waits on a
/// condition (bounded, with <see cref="Wait"/>), compares an order or a count, or moves a fake clock.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection
{
    public const string Name = "Timing";
}
