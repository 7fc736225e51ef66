using TaskManager.Api;

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddTaskManager();

var app = builder.Build();
app.UseTaskManager();
app.Run();
