using System.Security.Claims;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.Http.Resilience;

namespace TaskManager.Web.Services;

public static class ConsoleClaims
{
    /// <summary>The signed-in user's API key: kept in the encrypted session cookie, never sent to the page.</summary>
    public const string Key = "taskmanager:key";
}

public static class ConsoleRoles
{
    public const string Client = "client";
    public const string Admin = "admin";
}

public static class ConsoleSetup
{
    /// <summary>The API as service discovery names it (services__api__http__0, which the AppHost sets).</summary>
    public const string ApiAddress = "https+http://api";

    public static WebApplicationBuilder AddConsole(this WebApplicationBuilder builder)
    {
        // The standard handler of the service defaults retries every method; a retried submit,
        // cancel or drain would be made twice, so here only reads are retried. (Experimental API
        // of Microsoft.Extensions.Http.Resilience.)
#pragma warning disable EXTEXP0001
        builder.Services.AddHttpClient(TaskManagerClient.Calls, http =>
        {
            http.BaseAddress = new Uri(ApiAddress);
            http.Timeout = TimeSpan.FromSeconds(30);
        })
        .RemoveAllResilienceHandlers()
        .AddStandardResilienceHandler(options => options.Retry.DisableForUnsafeHttpMethods());
        // An event stream stays open as long as its task runs, past any resilience timeout, so
        // this client goes without the standard handler.
        builder.Services.AddHttpClient(TaskManagerClient.Streams, http =>
        {
            http.BaseAddress = new Uri(ApiAddress);
            http.Timeout = Timeout.InfiniteTimeSpan;
        })
        .RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001
        builder.Services.AddScoped<TaskManagerClient>();

        builder.Services.AddAuthentication(CookieAuthenticationDefaults.AuthenticationScheme)
            .AddCookie(options =>
            {
                options.Cookie.Name = "TaskManager.Console";
                options.Cookie.HttpOnly = true;
                options.Cookie.SameSite = SameSiteMode.Strict;
                options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
                options.LoginPath = "/signin";
                options.AccessDeniedPath = "/signin";
                options.ExpireTimeSpan = TimeSpan.FromHours(8);
                options.SlidingExpiration = true;
            });
        builder.Services.AddAuthorization();
        builder.Services.AddCascadingAuthenticationState();
        builder.Services.AddAntiforgery(options =>
        {
            options.Cookie.SameSite = SameSiteMode.Strict;
            options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        });
        return builder;
    }

    /// <summary>The session cookie of a key the API accepted: its role, its tenant as the name, and the key.</summary>
    public static Task SignInAsync(HttpContext context, string key, Caller caller)
    {
        var role = caller.Role == "admin" ? ConsoleRoles.Admin : ConsoleRoles.Client;
        return context.SignInAsync(CookieAuthenticationDefaults.AuthenticationScheme, new ClaimsPrincipal(new ClaimsIdentity(
            [new Claim(ClaimTypes.Name, caller.Tenant), new Claim(ClaimTypes.Role, role), new Claim(ConsoleClaims.Key, key)],
            CookieAuthenticationDefaults.AuthenticationScheme)));
    }

    /// <summary>
    /// Headers on every answer: no framing (the admin actions cannot be clicked through another
    /// site's page), no sniffing, and scripts, styles and connections from the console itself only.
    /// </summary>
    public static WebApplication UseConsoleHeaders(this WebApplication app)
    {
        app.Use((context, next) =>
        {
            var headers = context.Response.Headers;
            headers.XFrameOptions = "DENY";
            headers.XContentTypeOptions = "nosniff";
            headers["Referrer-Policy"] = "same-origin";
            // Inline styles: the GPU bars' widths and Blazor's reconnection dialog.
            headers.ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
                "img-src 'self' data:; media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";
            return next(context);
        });
        return app;
    }

    /// <summary>Sign-out (a form post with its antiforgery token) and artifacts, fetched from the API with the user's key.</summary>
    public static WebApplication MapConsoleEndpoints(this WebApplication app)
    {
        app.MapPost("/signout", async (HttpContext context, IAntiforgery antiforgery) =>
        {
            if (!await antiforgery.IsRequestValidAsync(context))
            {
                return Results.BadRequest();
            }
            await context.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
            return Results.LocalRedirect("/signin");
        }).DisableAntiforgery(); // validated above, where a refusal can be answered

        app.MapGet("/tasks/{id}/artifacts/{name}", async (string id, string name, HttpContext context, TaskManagerClient api) =>
        {
            var key = context.User.FindFirst(ConsoleClaims.Key)!.Value;
            using var answer = await api.ArtifactAsync(key, id, name, context.RequestAborted);
            if (!answer.IsSuccessStatusCode)
            {
                return Results.StatusCode((int)answer.StatusCode);
            }
            // A worker's bytes, served from the console's own origin: never run as a page. Only
            // raster images and audio are shown inline; anything else (HTML, SVG) is a download.
            var type = answer.Content.Headers.ContentType?.MediaType ?? "application/octet-stream";
            var shown = type is "image/png" or "image/jpeg" or "image/gif" or "image/webp" || type.StartsWith("audio/", StringComparison.Ordinal);
            context.Response.ContentType = shown ? type : "application/octet-stream";
            context.Response.Headers.ContentDisposition = shown ? "inline" : $"attachment; filename=\"{name.Replace("\"", "", StringComparison.Ordinal)}\"";
            context.Response.Headers.ContentSecurityPolicy = "sandbox; default-src 'none'";
            await answer.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
            return Results.Empty;
        }).RequireAuthorization();
        return app;
    }
}
