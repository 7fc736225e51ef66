using Yarp.ReverseProxy.Transforms;

// The platform's gateway in front of TaskManager: a YARP reverse proxy that routes /api/tasks/* and
// /api/health to the API, found by service discovery (services__api__http__0, which the AppHost
// sets from its reference to the api; run alone, set it to the API's address). The routes are in
// appsettings.json; this file adds what configuration cannot say.
//
// Gateway:PathBase (optional, such as /inference) mounts the API under a prefix, as a platform
// that serves several services from one host does: /inference/api/tasks reaches /api/tasks, and
// YARP tells the API the prefix in X-Forwarded-Prefix, so the links it answers with carry it.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
if (string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]) && string.IsNullOrEmpty(builder.Configuration["urls"]))
{
    builder.WebHost.UseUrls("http://0.0.0.0:8080");
}
builder.AddServiceDefaults();
builder.Services.AddReverseProxy()
    .LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"))
    .AddServiceDiscoveryDestinationResolver()
    .AddTransforms(transforms => transforms.AddRequestTransform(context =>
    {
        // A large body goes with "Expect: 100-continue": the API refuses one over its limit (413)
        // before reading it, and without the header the refusal would reach the gateway while it
        // still sends the body, as a broken connection, and the client would get a 502 instead
        // of the 413. A small body is sent at once, in the time the API takes to answer.
        var length = context.HttpContext.Request.ContentLength;
        if (length > ExpectContinueAboveBytes || (length is null && context.HttpContext.Request.Headers.TransferEncoding.Count > 0))
        {
            context.ProxyRequest.Headers.ExpectContinue = true;
        }
        return ValueTask.CompletedTask;
    }));

var pathBase = builder.Configuration["Gateway:PathBase"];
if (!string.IsNullOrEmpty(pathBase) && (!pathBase.StartsWith('/') || pathBase.EndsWith('/') || pathBase.Contains('?') || pathBase.Contains('#')))
{
    throw new InvalidOperationException($"Gateway:PathBase must be a path such as /inference, starting with '/' and not ending with one; it is '{pathBase}'.");
}

var app = builder.Build();
if (!string.IsNullOrEmpty(pathBase))
{
    app.UsePathBase(pathBase);
    // Mounted under a prefix, the gateway serves the API only there.
    app.Use((context, next) =>
    {
        if (!context.Request.PathBase.HasValue && context.Request.Path.StartsWithSegments("/api"))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }
        return next(context);
    });
}
app.MapDefaultEndpoints();
app.MapReverseProxy();
app.Run();

internal static partial class Program
{
    /// <summary>Bodies larger than this are forwarded with Expect: 100-continue.</summary>
    private const long ExpectContinueAboveBytes = 64 * 1024;
}
