using TaskManager.Api;

// The settings files sit beside the assembly; reading them from there rather than from the working
// directory means `dotnet path/to/TaskManager.Api.dll` started from anywhere gets the same
// configuration (without it, the log levels in appsettings.json were lost and every request logged
// four Information lines, which cost about half the API's CPU under load).
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddServiceDefaults();
builder.AddTaskManager();

var app = builder.Build();
app.UseTaskManager();
app.Run();
