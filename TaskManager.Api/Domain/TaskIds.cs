using System.Security.Cryptography;

namespace TaskManager.Api.Domain;

/// <summary>
/// Task ids: UUIDv7 (RFC 9562) in 32 lowercase hex digits, monotonic within this process. The
/// 48-bit millisecond time leads, then a 12-bit counter (RFC 9562 section 6.2, method 1) that
/// orders ids made in the same millisecond, so ids sort by creation and the queues and listing
/// indexes, which order by id within a millisecond, keep submission order.
/// </summary>
public static class TaskIds
{
    private const int CounterBits = 12;
    private static readonly Lock Gate = new();
    private static long lastMs = -1;
    private static int counter;

    public static string New(DateTimeOffset now)
    {
        long ms;
        int sequence;
        lock (Gate)
        {
            ms = now.ToUnixTimeMilliseconds();
            if (ms > lastMs)
            {
                lastMs = ms;
                // A random start within the lower half leaves room to count up in a busy millisecond.
                counter = RandomNumberGenerator.GetInt32(1 << (CounterBits - 1));
            }
            else if (++counter >= 1 << CounterBits)
            {
                // 4,096 ids in one millisecond: borrow the next millisecond rather than repeat.
                lastMs++;
                counter = 0;
            }
            ms = lastMs;
            sequence = counter;
        }

        Span<byte> bytes = stackalloc byte[16];
        RandomNumberGenerator.Fill(bytes[8..]);
        for (var i = 0; i < 6; i++)
        {
            bytes[i] = (byte)(ms >> (8 * (5 - i)));
        }
        bytes[6] = (byte)(0x70 | (sequence >> 8));
        bytes[7] = (byte)sequence;
        bytes[8] = (byte)(0x80 | (bytes[8] & 0x3F));
        return Convert.ToHexStringLower(bytes);
    }

    /// <summary>True for a task id as <see cref="New"/> makes them: 32 lowercase hex digits.</summary>
    public static bool IsTaskId(string? id) => id is { Length: 32 } && id.All(char.IsAsciiHexDigitLower);

    /// <summary>True for a worker id: <c>w_</c> and 32 lowercase hex digits.</summary>
    public static bool IsWorkerId(string? id) => id is { Length: 34 } && id.StartsWith("w_", StringComparison.Ordinal) && IsTaskId(id[2..]);
}
