namespace TaskManager.Api.Domain;

/// <summary>The store's health, and what an exception from it means for a caller.</summary>
public interface IStoreHealth
{
    /// <summary>Whether the store answers, and how fast; waits at most <paramref name="timeout"/>.</summary>
    Task<StoreHealth> CheckAsync(TimeSpan timeout);

    /// <summary>What went wrong with the store, when <paramref name="exception"/> came from it; else null (a bug).</summary>
    StoreFault? Describe(Exception exception);
}

public sealed record StoreHealth(bool Up, double? LatencyMs, string? Error);

public enum StoreFaultKind
{
    /// <summary>The store cannot be reached (an outage): retry shortly.</summary>
    Unavailable,
    /// <summary>The store is loading its data after a restart: retry shortly.</summary>
    Starting,
    /// <summary>The store answered with an error (a misconfiguration, out of memory, a cluster moving slots).</summary>
    Refused,
}

/// <summary>A store error a caller can act on: its kind and the cause, in words.</summary>
public sealed record StoreFault(StoreFaultKind Kind, string Detail);
