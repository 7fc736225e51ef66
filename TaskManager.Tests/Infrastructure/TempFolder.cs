namespace TaskManager.Tests.Infrastructure;

/// <summary>The temporary folders the fixtures make for Redis's data.</summary>
public static class TempFolder
{
    /// <summary>Deletes <paramref name="path"/> with what it holds, if there is one; a folder left behind is harmless.</summary>
    public static void Delete(string? path)
    {
        if (path is null)
        {
            return;
        }
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
            // Still in use (a process not yet gone): left for the system to clear.
        }
    }
}
