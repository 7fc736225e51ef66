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
    .AddServiceDiscoveryDestinationResolver();

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
