using System.Text.Json;
using Microsoft.Playwright;
using TaskManager.Tests.Infrastructure;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace TaskManager.Tests.Platform;

/// <summary>
/// The web console (TaskManager.Web) in a real browser (Debian's chromium, driven by Playwright)
/// against the real stack: it signs in with the API's keys, follows a task's tokens live, cancels,
/// retries, pauses a queue, drains a worker, keeps tenants apart, and shows no browser error.
/// Every page's screenshot is saved and its path written to the test output.
/// </summary>
[Trait("Category", "Platform")]
public sealed class ConsoleTests(ConsoleFixture fixture, ITestOutputHelper output) : IClassFixture<ConsoleFixture>
{
    private static readonly TimeSpan TaskTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AWrongKey_IsRefused_AndNoPageOpensWithoutSigningIn()
    {
        await using var session = await ConsoleSession.OpenAsync(fixture, output);
        var page = session.Page;

        await page.GotoAsync("/tasks");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/signin"));
        await page.GetByLabel("API key").FillAsync("not-a-key-the-api-knows");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();

        await Expect(page.GetByTestId("signin-error")).ToHaveTextAsync("The API refused this key.");
        await session.ScreenshotAsync("signin-refused");
        var cookies = await page.Context.CookiesAsync();
        Assert.DoesNotContain(cookies, c => c.Name == "TaskManager.Console");
        session.AssertNoBrowserErrors();
    }

    [Fact]
    public async Task ATenant_SubmitsAStreamedLlmTaskFromTheForm_SeesItsTokensArrive_ThenSucceeded()
    {
        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.ClientKey);
        var page = session.Page;
        var cookie = (await page.Context.CookiesAsync()).Single(c => c.Name == "TaskManager.Console");
        Assert.True(cookie.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, cookie.SameSite);
        Assert.DoesNotContain(Credentials.ClientKey, await page.ContentAsync(), StringComparison.Ordinal);

        await session.GoAsync("/submit");
        // The API's own refusal, shown beside the field it names.
        await page.GetByLabel("Prompt").FillAsync("Tell me about queues");
        await page.GetByLabel("Max tokens").FillAsync("99999");
        await page.GetByRole(AriaRole.Button, new() { Name = "Submit" }).ClickAsync();
        await Expect(page.GetByTestId("error-input.max_tokens")).ToBeVisibleAsync();
        await session.ScreenshotAsync("submit-refused");

        await page.GetByLabel("Max tokens").FillAsync("40");
        await page.GetByRole(AriaRole.Button, new() { Name = "Submit" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/tasks/[0-9a-f]{16,}$"));

        // Tokens appear while it runs (the worker makes 8 a second), and keep coming.
        var status = page.GetByTestId("task-status");
        var stream = page.GetByTestId("task-stream");
        await page.WaitForFunctionAsync(
            "() => document.querySelector('[data-testid=task-status]')?.textContent === 'running' && document.querySelector('[data-testid=task-stream]')?.textContent.length > 0");
        var seen = (await stream.TextContentAsync())!.Length;
        await page.WaitForFunctionAsync(
            "seen => document.querySelector('[data-testid=task-status]')?.textContent === 'running' && document.querySelector('[data-testid=task-stream]')?.textContent.length > seen",
            seen);
        await session.ScreenshotAsync("task-streaming");

        await Expect(status).ToHaveTextAsync("succeeded");
        var id = page.Url[(page.Url.LastIndexOf('/') + 1)..];
        var task = await fixture.GetTaskAsync(id);
        await Expect(page.GetByTestId("task-output-text")).ToHaveTextAsync(task.GetProperty("output").GetProperty("text").GetString()!);
        await session.ScreenshotAsync("task-succeeded");
        session.AssertNoBrowserErrors();
    }

    [Fact]
    public async Task ARunningHangingTask_CanceledFromItsPage_EndsCanceled()
    {
        var id = await fixture.SubmitAsync("""{"type":"llm","input":{"prompt":"hang"},"metadata":{"sim":{"hang":true}}}""");
        await fixture.WaitForStatusAsync(id, s => s == "running", TaskTimeout);
        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.ClientKey);
        var page = session.Page;

        await session.GoAsync($"/tasks/{id}");
        await Expect(page.GetByTestId("task-status")).ToHaveTextAsync("running");
        await page.GetByRole(AriaRole.Button, new() { Name = "Cancel task" }).ClickAsync();
        await Expect(page.GetByTestId("confirm")).ToBeVisibleAsync();
        await session.ScreenshotAsync("task-confirm-cancel");
        await page.GetByRole(AriaRole.Button, new() { Name = "Yes, cancel" }).ClickAsync();

        await Expect(page.GetByTestId("task-status")).ToHaveTextAsync("canceled");
        Assert.Equal("canceled", (await fixture.GetTaskAsync(id)).GetProperty("status").GetString());
        session.AssertNoBrowserErrors();
    }

    [Fact]
    public async Task AFailedTask_RetriedFromItsPage_Succeeds()
    {
        var id = await fixture.SubmitAsync(
            """{"type":"llm","input":{"prompt":"fail once"},"max_attempts":1,"metadata":{"sim":{"fail":"fatal","fail_attempts":1}}}""");
        await fixture.WaitForStatusAsync(id, s => s == "failed", TaskTimeout);
        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.ClientKey);
        var page = session.Page;

        await session.GoAsync($"/tasks/{id}");
        await Expect(page.GetByTestId("task-status")).ToHaveTextAsync("failed");
        await Expect(page.GetByTestId("task-error")).ToContainTextAsync("sim_failure");
        await page.GetByRole(AriaRole.Button, new() { Name = "Retry task" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Yes, retry" }).ClickAsync();

        await Expect(page.GetByTestId("task-status")).ToHaveTextAsync("succeeded");
        // Both attempts on the timeline: the failed one and the one that succeeded.
        await Expect(page.GetByTestId("attempts").Locator("li")).ToHaveCountAsync(2);
        await Expect(page.GetByTestId("attempts")).ToContainTextAsync("failed");
        await session.ScreenshotAsync("task-retried");
        session.AssertNoBrowserErrors();
    }

    [Fact]
    public async Task ATasksPage_ShowsItsWebhookDeliveries_WithEachAttempt_AndRedeliversOne()
    {
        var target = fixture.Receiver.Url("/status/200/console");
        var id = await fixture.SubmitAsync($$"""{"type":"tts","input":{"text":"tell me"},"webhook":"{{target}}","webhook_events_filter":["completed"]}""");
        await Wait.UntilAsync(() => fixture.Receiver.For(id).Count == 1, TaskTimeout, "the completed webhook to arrive");
        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.ClientKey);

        await session.GoAsync($"/tasks/{id}");

        var row = session.Page.GetByRole(AriaRole.Row).Filter(new() { HasText = "completed" });
        await Expect(row).ToContainTextAsync("delivered");
        await Expect(row).ToContainTextAsync(target.ToString());
        await Expect(row).ToContainTextAsync("200");

        // Sent again: the receiver gets it a second time, under the same webhook-id, and the row shows both attempts.
        await row.GetByRole(AriaRole.Button, new() { Name = "Redeliver the completed webhook" }).ClickAsync();
        await Wait.UntilAsync(() => fixture.Receiver.For(id).Count == 2, TaskTimeout, "the redelivery to arrive");
        Assert.Equal(fixture.Receiver.For(id)[0].Id, fixture.Receiver.For(id)[1].Id);
        await Expect(row).ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"200; \S+ 200"));
        await session.ScreenshotAsync("task-webhooks");
        session.AssertNoBrowserErrors();
    }

    [Fact]
    public async Task PausingAQueue_LeavesANewTaskWaiting_AndResumingRunsIt()
    {
        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.AdminKey);
        var page = session.Page;
        await session.GoAsync("/queues");
        var row = page.GetByTestId("queue-tts");
        try
        {
            await page.GetByRole(AriaRole.Button, new() { Name = "Pause the tts queue" }).ClickAsync();
            await page.GetByRole(AriaRole.Button, new() { Name = "Yes, Pause" }).ClickAsync();
            await Expect(row).ToContainTextAsync("paused");

            var waiting = await fixture.SubmitAsync("""{"type":"tts","input":{"text":"wait for the queue"}}""");
            // The worker leases and finishes a task submitted after it, so it did look for work,
            // and still the paused queue's task waits.
            var later = await fixture.SubmitAsync("""{"type":"llm","input":{"prompt":"after"},"metadata":{"sim":{"duration_ms":10}}}""");
            await fixture.WaitForStatusAsync(later, s => s == "succeeded", TaskTimeout);
            Assert.Equal("queued", (await fixture.GetTaskAsync(waiting)).GetProperty("status").GetString());
            await Expect(row.Locator("td").First).ToHaveTextAsync("1");
            await session.ScreenshotAsync("queues-paused");

            await page.GetByRole(AriaRole.Button, new() { Name = "Resume the tts queue" }).ClickAsync();
            await page.GetByRole(AriaRole.Button, new() { Name = "Yes, Resume" }).ClickAsync();
            await Expect(row).ToContainTextAsync("running");
            await session.GoAsync($"/tasks/{waiting}");
            await Expect(page.GetByTestId("task-status")).ToHaveTextAsync("succeeded");
            await Expect(page.Locator("audio")).ToBeVisibleAsync();
            session.AssertNoBrowserErrors();
        }
        finally
        {
            await fixture.Client.PostAsync("/api/admin/queues/tts/resume", null);
        }
    }

    [Fact]
    public async Task DrainingAWorker_ShowsItDraining()
    {
        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.AdminKey);
        var page = session.Page;
        await session.GoAsync("/workers");
        var spare = page.Locator($"[data-testid=worker][data-name={ConsoleFixture.SpareWorkerName}]");
        await Expect(spare.GetByTestId("worker-status")).ToHaveTextAsync("healthy");
        await Expect(spare.GetByRole(AriaRole.Meter)).ToHaveCountAsync(1);
        await session.ScreenshotAsync("workers");

        await page.GetByRole(AriaRole.Button, new() { Name = $"Drain {ConsoleFixture.SpareWorkerName}" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Yes, drain" }).ClickAsync();

        await Expect(spare.GetByTestId("worker-status")).ToHaveTextAsync("draining");
        var id = await fixture.WorkerIdAsync(ConsoleFixture.WorkerName);
        Assert.Equal("draining", (await fixture.WorkerHealthAsync((await SpareIdAsync())!)).GetProperty("status").GetString());
        Assert.Equal("healthy", (await fixture.WorkerHealthAsync(id)).GetProperty("status").GetString());
        await session.ScreenshotAsync("workers-draining");
        session.AssertNoBrowserErrors();
    }

    [Fact]
    public async Task TenantA_NeverSeesTenantBsTask_OnAnyPage()
    {
        using var tenantB = fixture.Api.ClientWith(Credentials.OtherClientKey);
        var response = await tenantB.PostJsonAsync("/api/tasks", """{"type":"tts","input":{"text":"tenant b's secret"}}""");
        var theirs = (await response.JsonAsync()).GetProperty("id").GetString()!;
        var ours = await fixture.SubmitAsync("""{"type":"tts","input":{"text":"tenant a's own"}}""");
        await fixture.WaitForStatusAsync(ours, s => s == "succeeded", TaskTimeout);

        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.ClientKey);
        var page = session.Page;
        // The header names the tenant the API says the key is of.
        await Expect(page.GetByTestId("role")).ToHaveTextAsync($"Tenant {Credentials.TenantA}");
        // Each page once its data has come (its heading alone is there before the API answers).
        var loaded = new Dictionary<string, Func<ILocator>>
        {
            ["/"] = () => page.GetByTestId("by-type"),
            ["/tasks"] = () => page.GetByTestId("task-list").GetByText(ours),
            ["/tasks?type=tts"] = () => page.GetByTestId("task-list").GetByText(ours),
            ["/queues"] = () => page.GetByTestId("queues"),
            ["/workers"] = () => page.GetByTestId("worker").First,
            ["/submit"] = () => page.GetByRole(AriaRole.Form, new() { Name = "Task request" }),
        };
        foreach (var (path, data) in loaded)
        {
            await session.GoAsync(path);
            await Expect(page.Locator("main h1")).ToBeVisibleAsync();
            await Expect(data()).ToBeVisibleAsync();
            Assert.DoesNotContain(theirs, await page.ContentAsync(), StringComparison.Ordinal);
        }
        await session.GoAsync("/tasks?type=tts");
        await Expect(page.GetByTestId("task-list")).ToContainTextAsync(ours);
        await session.ScreenshotAsync("tasks");
        // Found by id: as unknown to tenant A as an id that does not exist.
        await page.GetByLabel("Task id").FillAsync(theirs);
        await page.GetByRole(AriaRole.Button, new() { Name = "Open task" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"/tasks/{theirs}$"));
        await Expect(page.GetByTestId("task-problem")).ToContainTextAsync("No such task");
        Assert.DoesNotContain("tenant b's secret", await page.ContentAsync(), StringComparison.Ordinal);
        var artifact = await page.Context.APIRequest.GetAsync($"/tasks/{theirs}/artifacts/audio.wav");
        Assert.Equal(404, artifact.Status);

        // An admin sees both: the check above would have seen tenant B's task had the console shown it.
        await using var admin = await ConsoleSession.SignedInAsync(fixture, output, Credentials.AdminKey);
        await Expect(admin.Page.GetByTestId("role")).ToHaveTextAsync("Admin: every tenant");
        await admin.GoAsync($"/tasks?tenant={Credentials.TenantB}");
        await Expect(admin.Page.GetByTestId("task-list")).ToContainTextAsync(theirs);
        await admin.ScreenshotAsync("tasks-admin");
        session.AssertNoBrowserErrors();
        admin.AssertNoBrowserErrors();
    }

    [Fact]
    public async Task TheTaskList_IsNewestFirst_AndPagesByCursor_WithItsFiltersInTheUrl()
    {
        // Tenant B's sd tasks: 24 at once, then the newest, more than a page of 20.
        using var tenantB = fixture.Api.ClientWith(Credentials.OtherClientKey);
        var batch = string.Join(',', Enumerable.Range(0, 24).Select(i => $$$"""{"type":"sd","input":{"prompt":"page {{{i}}}"}}"""));
        var created = await (await tenantB.PostJsonAsync("/api/tasks/batch", $$"""{"tasks":[{{batch}}]}""")).JsonAsync();
        var ids = created.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("task").GetProperty("id").GetString()!).ToList();
        var newest = (await (await tenantB.PostJsonAsync("/api/tasks", """{"type":"sd","input":{"prompt":"newest"}}""")).JsonAsync()).GetProperty("id").GetString()!;
        ids.Add(newest);
        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.OtherClientKey);
        var page = session.Page;

        await session.GoAsync("/tasks");
        await page.GetByLabel("Type").SelectOptionAsync("sd");
        await page.GetByRole(AriaRole.Button, new() { Name = "Apply filters" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/tasks\\?type=sd$"));
        var links = page.GetByTestId("task-list").Locator("tbody a");
        await Expect(links).ToHaveCountAsync(20);
        var first = await links.AllTextContentsAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "Next page" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("type=sd&cursor="));
        await Expect(links).Not.ToHaveCountAsync(20);
        var second = await links.AllTextContentsAsync();

        // Newest first, and the two pages hold every one of them once.
        Assert.Equal(newest, first[0]);
        var listed = first.Concat(second).ToList();
        Assert.Equal(listed.Count, listed.Distinct().Count());
        Assert.Equal(ids.Order(), listed.Where(ids.Contains).Order());
        session.AssertNoBrowserErrors();
    }

    [Fact]
    public async Task SigningOut_EndsTheSession_AndAPostWithoutItsAntiforgeryTokenIsRefused()
    {
        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.ClientKey);
        var page = session.Page;

        // A cross-site form would post without the page's token: refused, and still signed in.
        var forged = await page.Context.APIRequest.PostAsync("/signout");
        Assert.Equal(400, forged.Status);
        await session.GoAsync("/tasks");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Tasks", Exact = true })).ToBeVisibleAsync();

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/signin$"));
        await page.GotoAsync("/tasks");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/signin"));
        session.AssertNoBrowserErrors();
    }

    [Fact]
    public async Task TheOverview_FollowsTheTenantsRunningTasks_WithoutAReload()
    {
        using var tenantB = fixture.Api.ClientWith(Credentials.OtherClientKey);
        await using var session = await ConsoleSession.SignedInAsync(fixture, output, Credentials.OtherClientKey);
        var running = session.Page.GetByTestId("by-type").Locator("tr", new() { Has = session.Page.GetByRole(AriaRole.Rowheader, new() { Name = "llm" }) })
            .Locator("td").Nth(1);
        await Expect(running).ToHaveTextAsync("0");

        var response = await tenantB.PostJsonAsync("/api/tasks", """{"type":"llm","input":{"prompt":"hang"},"metadata":{"sim":{"hang":true}}}""");
        var id = (await response.JsonAsync()).GetProperty("id").GetString()!;
        try
        {
            await Expect(running).ToHaveTextAsync("1");
            await session.ScreenshotAsync("overview");
        }
        finally
        {
            await tenantB.PostAsync($"/api/tasks/{id}/cancel", null);
        }
        await Expect(running).ToHaveTextAsync("0");
        // The chart counts the canceled task among llm's finishes of the current minute (its last point).
        await Expect(session.Page.GetByRole(AriaRole.Img, new() { NameRegex = new System.Text.RegularExpressions.Regex("^Finished per minute") }))
            .ToHaveAttributeAsync("aria-label", new System.Text.RegularExpressions.Regex(@"llm (\d+, ){14}[1-9]\d*;"));
        session.AssertNoBrowserErrors();
    }

    [Theory]
    [InlineData(1280, 800, "desktop")]
    [InlineData(390, 844, "phone")]
    public async Task EveryPage_FitsTheScreen_AndEveryControlIsLabelledAndReachable(int width, int height, string device)
    {
        var id = await fixture.SubmitAsync("""{"type":"sd","input":{"prompt":"a lighthouse"}}""");
        await fixture.WaitForStatusAsync(id, s => s == "succeeded", TaskTimeout);
        await using var session = await ConsoleSession.OpenAsync(fixture, output, width, height);
        var page = session.Page;
        await page.GotoAsync("/signin");
        await session.ScreenshotAsync($"signin-{device}");
        await session.SignInAsync(Credentials.AdminKey);

        foreach (var (path, name) in (ValueTuple<string, string>[])[
            ("/", "overview"), ("/tasks", "tasks"), ($"/tasks/{id}", "task"), ("/submit", "submit"), ("/submit?type=image_to_text", "submit-image"),
            ("/queues", "queues"), ("/workers", "workers")])
        {
            await session.GoAsync(path);
            await Expect(page.Locator("main h1")).ToBeVisibleAsync();
            if (name == "task")
            {
                var image = page.GetByRole(AriaRole.Img, new() { Name = "Image image-0.png" });
                await Expect(image).ToBeVisibleAsync();
                // Served by the console with the signed-in key, and never as a page that could run script.
                var served = await page.Context.APIRequest.GetAsync((await image.GetAttributeAsync("src"))!);
                Assert.Equal("image/png", served.Headers["content-type"]);
                Assert.StartsWith("sandbox", served.Headers["content-security-policy"], StringComparison.Ordinal);
            }
            await session.ScreenshotAsync($"{name}-{device}");
            // Wide tables scroll inside their own box; the page itself never scrolls sideways.
            var wider = await page.EvaluateAsync<string[]>(
                """
                () => {
                    if (document.documentElement.scrollWidth <= window.innerWidth) return [];
                    const wide = [...document.body.querySelectorAll('*')]
                        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.closest('.table-wrap'))
                        .map(e => e.outerHTML.slice(0, 120));
                    return wide.length ? wide : ['the page scrolls sideways'];
                }
                """);
            Assert.True(wider.Length == 0, $"{path} is wider than a {width} px screen:\n" + string.Join("\n", wider));
            var unlabelled = await page.EvaluateAsync<string[]>(
                """
                () => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
                    .filter(e => !(e.labels?.length || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || e.textContent.trim())
                        || e.tabIndex < 0)
                    .map(e => e.outerHTML.slice(0, 120))
                """);
            Assert.True(unlabelled.Length == 0, $"{path}: controls without a label or out of the keyboard's reach:\n" + string.Join("\n", unlabelled));
        }
        session.AssertNoBrowserErrors();
    }

    private async Task<string?> SpareIdAsync()
    {
        var workers = (await (await fixture.Client.GetAsync("/api/tasks/workers/health")).JsonAsync()).GetProperty("workers");
        return workers.EnumerateArray().Where(w => w.GetProperty("name").GetString() == ConsoleFixture.SpareWorkerName)
            .Select(w => w.GetProperty("id").GetString()).FirstOrDefault();
    }
}
