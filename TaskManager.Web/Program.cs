using TaskManager.Web.Components;
using TaskManager.Web.Services;

// The operator console: a Blazor app (interactive server rendering) that is a client of the API
// over HTTP, found by service discovery (services__api__http__0), with the signed-in user's key.
// It never talks to Redis and adds nothing to the API's hot path. See docs/console.md.
var builder = WebApplication.CreateBuilder(args);
if (string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]) && string.IsNullOrEmpty(builder.Configuration["urls"]))
{
    builder.WebHost.UseUrls("http://0.0.0.0:8090");
}
builder.AddServiceDefaults();
builder.AddConsole();
builder.Services.AddRazorComponents().AddInteractiveServerComponents();

var app = builder.Build();
app.UseConsoleHeaders();
app.UseAuthentication();
app.UseAuthorization();
app.UseAntiforgery();
app.MapStaticAssets();
app.MapConsoleEndpoints();
app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
app.MapDefaultEndpoints();
app.Run();
