using Hangfire;
using OpenTelemetry.Metrics;
using Microsoft.Extensions.Options;
using Scalar.AspNetCore;
using TaskManager.Api.Coordination;
using TaskManager.Api.Endpoints;
using TaskManager.Api.Observability;
using TaskManager.Api.Scheduling;
using TaskManager.Api.Security;
using TaskManager.Api.Storage;

namespace TaskManager.Api;

/// <summary>The service's wiring, called from Program.cs: one method to add, one to map.</summary>
public static class TaskManagerSetup
{
    /// <summary>Where the API listens when run alone without ASPNETCORE_URLS (the gateway routes /api/* here).</summary>
    public const string DefaultUrl = "http://0.0.0.0:8084";

    public static WebApplicationBuilder AddTaskManager(this WebApplicationBuilder builder)
    {
        if (string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]) && string.IsNullOrEmpty(builder.Configuration["urls"]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        builder.Services.AddOptions<TaskManagerOptions>()
            .Bind(builder.Configuration.GetSection(TaskManagerOptions.Section))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        var options = builder.Configuration.GetSection(TaskManagerOptions.Section).Get<TaskManagerOptions>() ?? new();

        builder.AddRedisStorage(options);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddTaskScheduling(options, StorageSetup.HangfireStorage);
        builder.Services.AddSingleton<FleetGauges>();
        builder.Services.AddSingleton<TaskTelemetry>();

        if (options.Role == "api")
        {
            builder.Services.AddCoordination();
            builder.Services.ConfigureHttpJsonOptions(json => TaskJson.Configure(json.SerializerOptions));
            builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
            // Before AddProblemDetails: the problems of requests under /v1 are written in OpenAI's shape.
            builder.Services.AddOpenAiApi();
            builder.Services.AddProblemDetails();
            builder.Services.AddExceptionHandler<ErrorHandling>();
            builder.Services.AddOpenApi();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<FleetGauges>());
            // Prometheus scrapes /metrics where there is no Aspire dashboard.
            builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddPrometheusExporter());
            builder.Services.AddTaskManagerSecurity();
            builder.Services.AddSingleton<HangfireDashboardAuthorization>();
            builder.WebHost.ConfigureKestrel(kestrel =>
                kestrel.Limits.MaxRequestBodySize = Math.Max(Math.Max(options.MaxTaskRequestBytes, options.MaxOutputBytes), options.MaxBatchRequestBytes));
        }
        return builder;
    }

    public static WebApplication UseTaskManager(this WebApplication app)
    {
        app.MapDefaultEndpoints();
        var options = app.Services.GetRequiredService<IOptions<TaskManagerOptions>>().Value;
        if (options.Role != "api")
        {
            return app;
        }

        // First: the client's address and the links in answers are those the trusted gateway reports.
        app.UseForwardedHeaders();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRouting();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.UseMiddleware<BodySizeLimitMiddleware>();

        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapScalarApiReference("/scalar", scalar => scalar.WithTitle("TaskManager API"));
        app.UseHangfireDashboard("/hangfire", new DashboardOptions
        {
            DashboardTitle = "TaskManager scheduler",
            Authorization = [app.Services.GetRequiredService<HangfireDashboardAuthorization>()],
        });

        app.MapHealthApi();
        app.MapCallerApi();
        app.MapTasksApi();
        app.MapRetryApi();
        app.MapWebhooksApi();
        app.MapTaskEventsApi();
        app.MapFleetApi();
        app.MapStatsApi();
        app.MapWorkersApi();
        app.MapWebhookSecretsApi();
        app.MapOpenAiApi();
        return app;
    }
}
