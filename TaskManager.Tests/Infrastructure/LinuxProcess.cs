namespace TaskManager.Tests.Infrastructure;

/// <summary>Processes of this machine as Linux's <c>/proc</c> shows them, by id (of processes the tests did not start themselves).</summary>
public static class LinuxProcess
{
    /// <summary>Whether process <paramref name="pid"/> exists and is not a zombie: an unreaped corpse counts as gone.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            // "pid (name) state ...": the name may hold spaces and parentheses, the state follows the last ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] != 'Z';
        }
        catch (IOException)
        {
            return false; // no such process (DirectoryNotFoundException, FileNotFoundException), or gone while read
        }
    }
}
