using System.Diagnostics;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace TaskManager.Tests.Infrastructure;

/// <summary>
/// The web console against the real stack: the fleet (Redis, API, scheduler, Python workers with
/// the sim backend, pacing streamed tokens), the console as its own process, and one headless
/// Debian chromium driven by Playwright. Shared by the console's browser tests.
/// </summary>
public sealed class ConsoleFixture : Fleet<RedisServer>
{
    /// <summary>The worker that runs the tests' tasks; two slots, so a hanging task leaves one free.</summary>
    public const string WorkerName = "console-worker";

    /// <summary>A worker that only the drain test drains.</summary>
    public const string SpareWorkerName = "console-spare";

    /// <summary>Where Debian's chromium package puts it (.ci/run installs it); Playwright downloads no browser here.</summary>
    public const string Chromium = "/usr/bin/chromium";

    // The receiver of the tests' webhooks listens on loopback: the scheduler may call it.
    private static readonly Dictionary<string, string> ConsoleSettings = new(ServerSettings)
    {
        ["TaskManager__Webhooks__AllowPrivateTargets"] = "true",
    };

    private ChildProcess? console;
    private IPlaywright? playwright;

    protected override IDictionary<string, string> Settings => ConsoleSettings;

    /// <summary>Where the tests' tasks send their webhooks.</summary>
    public WebhookReceiver Receiver { get; private set; } = null!;

    public Uri ConsoleAddress { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>The folder the tests save their screenshots in (listed in the test output).</summary>
    public string Screenshots { get; } = Path.Combine(Repository.Root, "TaskManager.Tests", "TestResults", "console-screenshots");

    public string ConsoleOutput => console?.Output ?? "";

    public override async Task InitializeAsync()
    {
        if (!File.Exists(Chromium))
        {
            throw new InvalidOperationException($"The console tests drive Debian's chromium at {Chromium}: apt-get install chromium (.ci/run does).");
        }
        Receiver = await WebhookReceiver.StartAsync();
        await base.InitializeAsync();
        // Tokens paced as a model makes them, so a stream is seen arriving.
        var paced = new Dictionary<string, string> { ["TASKMANAGER_SIM_TOKENS_PER_SECOND"] = "8" };
        StartWorker(WorkerName, capacity: 2, paced);
        StartWorker(SpareWorkerName, capacity: 1, new Dictionary<string, string>
        {
            ["TASKMANAGER_TASK_TYPES"] = "sd",
            ["TASKMANAGER_GPUS"] = """[{"name": "NVIDIA H100", "memory_total_mb": 81559, "memory_free_mb": 60000}]""",
        });
        await WorkerIdAsync(WorkerName);
        await WorkerIdAsync(SpareWorkerName);

        var port = RedisServer.FreePort();
        var start = new ProcessStartInfo("dotnet") { ArgumentList = { BuildOutput.Of("TaskManager.Web") } };
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        start.Environment["services__api__http__0"] = Api.BaseAddress.ToString().TrimEnd('/');
        console = ChildProcess.Start(start, "console");
        ConsoleAddress = new Uri($"http://127.0.0.1:{port}");
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) })
        {
            await console.WaitUntilAsync(async () => (await http.GetAsync(new Uri(ConsoleAddress, "/health"))).IsSuccessStatusCode,
                "the console to answer /health", () => console.Output);
        }

        playwright = await Playwright.CreateAsync();
        Browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox"],
        });
        Directory.CreateDirectory(Screenshots);
        // A page that reads the API every 2 s, and a task that runs a few seconds, need more than the 5 s default.
        Assertions.SetDefaultExpectTimeout(20_000);
    }

    public override async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }
        playwright?.Dispose();
        if (console is not null)
        {
            await console.DisposeAsync();
        }
        await base.DisposeAsync();
        if (Receiver is not null)
        {
            await Receiver.DisposeAsync();
        }
    }
}

/// <summary>
/// One browser context (its own cookies) on the console: it records the browser's console errors
/// and uncaught page errors, and saves screenshots where the test output lists them.
/// </summary>
public sealed class ConsoleSession(ConsoleFixture fixture, IBrowserContext context, IPage page, ITestOutputHelper output) : IAsyncDisposable
{
    public IPage Page { get; } = page;

    public List<string> BrowserErrors { get; } = [];

    public static async Task<ConsoleSession> OpenAsync(ConsoleFixture fixture, ITestOutputHelper output, int width = 1280, int height = 800)
    {
        var context = await fixture.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = fixture.ConsoleAddress.ToString(),
            ViewportSize = new ViewportSize { Width = width, Height = height },
        });
        var page = await context.NewPageAsync();
        var session = new ConsoleSession(fixture, context, page, output);
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                lock (session.BrowserErrors)
                {
                    session.BrowserErrors.Add($"{page.Url}: {message.Text}");
                }
            }
        };
        page.PageError += (_, error) =>
        {
            lock (session.BrowserErrors)
            {
                session.BrowserErrors.Add($"{page.Url}: uncaught {error}");
            }
        };
        return session;
    }

    /// <summary>A session at 1280×800, signed in with <paramref name="key"/>.</summary>
    public static async Task<ConsoleSession> SignedInAsync(ConsoleFixture fixture, ITestOutputHelper output, string key)
    {
        var session = await OpenAsync(fixture, output);
        await session.SignInAsync(key);
        return session;
    }

    /// <summary>Signs in with <paramref name="key"/> and waits for the overview, running over its circuit.</summary>
    public async Task SignInAsync(string key)
    {
        await Page.GotoAsync("/signin");
        await Page.GetByLabel("API key").FillAsync(key);
        await Page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(Page.GetByRole(AriaRole.Heading, new() { Name = "Overview", Exact = true })).ToBeVisibleAsync();
        await WaitInteractiveAsync();
    }

    /// <summary>Opens a page of the console and waits until it runs over its circuit (clicks work).</summary>
    public async Task GoAsync(string path)
    {
        await Page.GotoAsync(path);
        await WaitInteractiveAsync();
    }

    public Task WaitInteractiveAsync() => Assertions.Expect(Page.Locator("main[data-interactive='true']")).ToBeAttachedAsync();

    /// <summary>
    /// Saves a full-page screenshot and names its path in the test output, which the CI log shows
    /// for passing tests too (xunit.runner.json: diagnosticMessages).
    /// </summary>
    public async Task ScreenshotAsync(string name)
    {
        var path = Path.Combine(fixture.Screenshots, name + ".png");
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        output.WriteLine($"screenshot: {path}");
    }

    /// <summary>No error reached the browser's console, and no script failed.</summary>
    public void AssertNoBrowserErrors()
    {
        lock (BrowserErrors)
        {
            Assert.True(BrowserErrors.Count == 0, "The browser's console shows errors:\n" + string.Join("\n", BrowserErrors) +
                "\nThe console's output:\n" + fixture.ConsoleOutput);
        }
    }

    public async ValueTask DisposeAsync() => await context.CloseAsync();
}
