using System.Text.RegularExpressions;
using TaskManager.Api.Domain;
using TaskManager.Api.Storage;

namespace TaskManager.Tests.Unit;

/// <summary>The state machine table (docs/architecture.md, "Task lifecycle") and its copy in the Lua scripts.</summary>
[Trait("Category", "Unit")]
public sealed partial class TaskStateTests
{
    public static TheoryData<string> FinalStates =>
        new() { TaskState.Succeeded, TaskState.Failed, TaskState.Canceled, TaskState.TimedOut };

    [Theory]
    [MemberData(nameof(FinalStates))]
    public void FinalState_IsFinal_AndMovesNowhere(string final)
    {
        Assert.True(TaskState.IsFinal(final));
        Assert.Empty(TaskState.Transitions[final]);
        Assert.All(TaskState.All, to => Assert.False(TaskState.CanMove(final, to), $"{final} -> {to} is allowed"));
    }

    [Fact]
    public void IsFinal_HoldsExactlyForTheFiveStatesThatMoveNowhere()
    {
        var final = TaskState.All.Where(TaskState.IsFinal).Order(StringComparer.Ordinal);
        var stuck = TaskState.All.Where(s => TaskState.Transitions[s].Count == 0).Order(StringComparer.Ordinal);

        Assert.Equal(["canceled", "expired", "failed", "succeeded", "timed_out"], final);
        Assert.Equal(final, stuck);
    }

    [Fact]
    public void EveryFinalStateButSucceeded_MayBeRetried_AndNoOtherState() =>
        Assert.Equal(["canceled", "expired", "failed", "timed_out"],
            TaskState.All.Where(TaskState.CanRetry).Order(StringComparer.Ordinal));

    [Theory]
    [InlineData("queued", "running")]
    [InlineData("queued", "canceled")]
    [InlineData("scheduled", "queued")]
    [InlineData("scheduled", "canceled")]
    [InlineData("running", "succeeded")]
    [InlineData("running", "failed")]
    [InlineData("running", "timed_out")]
    [InlineData("running", "queued")]
    [InlineData("running", "scheduled")]
    [InlineData("running", "canceling")]
    [InlineData("canceling", "canceled")]
    public void CanMove_AllowsTheLifecycleTransitions(string from, string to) =>
        Assert.True(TaskState.CanMove(from, to));

    [Theory]
    [InlineData("queued", "succeeded")]
    [InlineData("queued", "failed")]
    [InlineData("queued", "canceling")]
    [InlineData("queued", "queued")]
    [InlineData("scheduled", "running")]
    [InlineData("running", "running")]
    [InlineData("running", "canceled")]
    [InlineData("canceling", "succeeded")]
    [InlineData("canceling", "failed")]
    [InlineData("canceling", "queued")]
    [InlineData("canceling", "running")]
    [InlineData("canceling", "timed_out")]
    [InlineData("succeeded", "queued")]
    [InlineData("canceled", "queued")]
    [InlineData("failed", "running")]
    [InlineData("timed_out", "queued")]
    public void CanMove_RefusesTransitionsOutsideTheLifecycle(string from, string to) =>
        Assert.False(TaskState.CanMove(from, to));

    [Fact]
    public void Queued_MovesOnlyToRunningCanceledOrExpired() =>
        Assert.Equal(["canceled", "expired", "running"], TaskState.Transitions[TaskState.Queued].Order(StringComparer.Ordinal));

    [Fact]
    public void Canceling_MovesOnlyToCanceled_SoALateResultCannotOverrideACancel() =>
        Assert.Equal(["canceled"], TaskState.Transitions[TaskState.Canceling]);

    [Theory]
    [InlineData("")]
    [InlineData("done")]
    [InlineData("QUEUED")]
    [InlineData("cancelled")]
    public void UnknownState_IsNotKnown_NotFinal_AndMovesNowhere(string unknown)
    {
        Assert.False(TaskState.IsKnown(unknown));
        Assert.False(TaskState.IsFinal(unknown));
        Assert.False(TaskState.CanMove(unknown, TaskState.Running));
        Assert.False(TaskState.CanMove(TaskState.Queued, unknown));
    }

    [Fact]
    public void Table_CoversEveryStatus_AndTargetsOnlyKnownStates()
    {
        Assert.Equal(TaskState.All.Order(StringComparer.Ordinal), TaskState.Transitions.Keys.Order(StringComparer.Ordinal));
        Assert.All(TaskState.Transitions.Values.SelectMany(t => t), to => Assert.True(TaskState.IsKnown(to), to));
    }

    [Fact]
    public void LuaTransitionsTable_ReflectsTaskStateTransitions()
    {
        var lua = LuaLibrary.TransitionsTable();

        Assert.StartsWith("local TRANSITIONS = {", lua, StringComparison.Ordinal);
        var parsed = LuaEntry().Matches(lua).ToDictionary(
            m => m.Groups["from"].Value,
            m => LuaTarget().Matches(m.Groups["targets"].Value).Select(t => t.Groups["to"].Value).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(TaskState.Transitions.Count, parsed.Count);
        foreach (var (from, targets) in TaskState.Transitions)
        {
            Assert.True(parsed.ContainsKey(from), $"The Lua table has no entry for '{from}':\n{lua}");
            Assert.Equal(targets.Order(StringComparer.Ordinal), parsed[from]);
        }
    }

    [Fact]
    public void TheScriptLibrary_CarriesTheTransitionsTable_AndRegistersEveryScript()
    {
        var library = new LuaLibrary(new RedisKeys("{unit}:"));

        Assert.Contains(LuaLibrary.TransitionsTable(), library.Text, StringComparison.Ordinal);
        Assert.StartsWith($"#!lua name={library.Name}\n", library.Text, StringComparison.Ordinal);
        // Every script the API calls is a function of the library, under its own name.
        var functions = Enum.GetValues<Script>().Select(library.FunctionOf).ToArray();
        Assert.Equal(Enum.GetValues<Script>().Length, functions.Distinct().Count());
        Assert.All(functions, function => Assert.Contains($"redis.register_function('{function}'", library.Text, StringComparison.Ordinal));
        // Another prefix is another library, so two deployments on one Redis never share one.
        Assert.NotEqual(library.Name, new LuaLibrary(new RedisKeys("{other}:")).Name);
    }

    // One entry per line: `  running = {canceling = true, failed = true},`
    [GeneratedRegex(@"^\s*(?<from>[a-z_]+) = \{(?<targets>[^}]*)\},?\s*$", RegexOptions.Multiline)]
    private static partial Regex LuaEntry();

    [GeneratedRegex(@"(?<to>[a-z_]+) = true")]
    private static partial Regex LuaTarget();
}
