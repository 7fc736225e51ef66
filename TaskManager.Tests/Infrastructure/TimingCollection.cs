namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// Tests that measure a latency (a wake-up under a second, a cancel within its grace) run alone,
/// after the parallel ones, so that a busy two-core machine does not decide their outcome.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection
{
    public const string Name = "Timing";
}
