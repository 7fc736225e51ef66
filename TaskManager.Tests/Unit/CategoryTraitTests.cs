using System.Reflection;
using TaskManager.Tests.Storage;

namespace TaskManager.Tests.Unit;

/// <summary>
/// Tests that say what they are: every class that runs tests carries exactly one Category trait,
/// on the class itself (xunit's discovery of traits on base classes is not relied on), one of the
/// eight categories, the same as the last part of its namespace (and so of its folder). A
/// <c>dotnet test --filter Category=X</c> per category then runs every test once.
/// </summary>
[Trait("Category", "Unit")]
public sealed class CategoryTraitTests
{
    private static readonly string[] Categories = ["Unit", "Storage", "Api", "Fleet", "Reliability", "EndToEnd", "Cluster", "Platform"];

    private const BindingFlags Everything = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;

    [Fact]
    public void EveryTestClass_HasOneCategory_OneOfTheEight_NamedAsItsNamespace()
    {
        var classes = TestClasses().ToArray();
        var wrong = new List<string>();

        foreach (var type in classes)
        {
            var own = CategoryTraits(type);
            var inherited = Ancestors(type).SelectMany(CategoryTraits).ToArray();
            var onMethods = TestMethods(type).Where(m => CategoryTraits(m).Length > 0).Select(m => m.Name).ToArray();
            var folder = type.Namespace?.Split('.')[^1];
            if (own.Length != 1)
            {
                wrong.Add($"{type.FullName}: {own.Length} Category traits on the class ({string.Join(", ", own)}), not one");
            }
            else if (!Categories.Contains(own[0]))
            {
                wrong.Add($"{type.FullName}: Category '{own[0]}' is not one of {string.Join(", ", Categories)}");
            }
            else if (own[0] != folder)
            {
                wrong.Add($"{type.FullName}: Category '{own[0]}' in namespace {type.Namespace} (expected '{folder}')");
            }
            if (inherited.Length > 0)
            {
                wrong.Add($"{type.FullName}: a base class carries a Category trait ({string.Join(", ", inherited)})");
            }
            if (onMethods.Length > 0)
            {
                wrong.Add($"{type.FullName}: Category traits on test methods ({string.Join(", ", onMethods)})");
            }
        }

        Assert.True(wrong.Count == 0, $"{wrong.Count} of {classes.Length} test classes are off:\n" + string.Join("\n", wrong));
    }

    [Fact]
    public void TheTestClassesChecked_AreTheConcreteOnes_WithTheTestsTheyInherit()
    {
        var classes = TestClasses().ToArray();

        Assert.Contains(typeof(CategoryTraitTests), classes);
        // A storage suite runs through its concrete classes, not through its abstract generic base.
        Assert.Contains(typeof(TaskStoreOnOneRedis), classes);
        Assert.Contains(typeof(Cluster.TaskStoreOnACluster), classes);
        Assert.DoesNotContain(classes, t => t.IsAbstract || t.ContainsGenericParameters);
        Assert.DoesNotContain(classes, t => t.Namespace == typeof(Infrastructure.Wait).Namespace);
    }

    /// <summary>The classes xunit runs tests of: concrete, closed, with a [Fact] or [Theory] of their own or inherited.</summary>
    private static IEnumerable<Type> TestClasses() =>
        typeof(CategoryTraitTests).Assembly.GetTypes()
            .Where(t => t.IsClass && !t.IsAbstract && !t.ContainsGenericParameters && TestMethods(t).Any());

    private static IEnumerable<MethodInfo> TestMethods(Type type) =>
        type.GetMethods(Everything | BindingFlags.FlattenHierarchy).Where(m => m.IsDefined(typeof(FactAttribute), inherit: true));

    private static IEnumerable<Type> Ancestors(Type type)
    {
        for (var b = type.BaseType; b is not null && b != typeof(object); b = b.BaseType)
        {
            yield return b;
        }
    }

    /// <summary>The values of the Category traits declared on a class or method itself (xunit keeps them in the attribute's arguments).</summary>
    private static string[] CategoryTraits(MemberInfo member) =>
        member.GetCustomAttributesData()
            .Where(a => a.AttributeType == typeof(TraitAttribute) && (string?)a.ConstructorArguments[0].Value == "Category")
            .Select(a => (string)a.ConstructorArguments[1].Value!)
            .ToArray();
}
