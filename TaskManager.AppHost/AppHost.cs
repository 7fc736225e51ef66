using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using TaskManager.AppHost;

// The whole application: Redis, the task API, the scheduler (the same project in its scheduler
// role) and the Python GPU worker. Every address is Aspire's: nothing here names a port.
var builder = DistributedApplication.CreateBuilder(args);
var settings = builder.Configuration.GetSection("TaskManager");

// Scale-out: how many processes of each role. Every replica of a role is the same project with
// the same settings; they share nothing but Redis.
var apiReplicas = Replicas("ApiReplicas");
var schedulerReplicas = Replicas("SchedulerReplicas");

var useContainers = settings["Containers"] switch
{
    "true" => true,
    "false" => false,
    _ => Infrastructure.ContainerRuntimeAnswers(),
};

IResourceBuilder<IResourceWithConnectionString> redis;
if (useContainers)
{
    redis = builder.AddRedis("redis")
        .WithDataVolume("taskmanager-redis")
        .WithArgs("--appendonly", "yes", "--appendfsync", "everysec");
}
else
{
    var redisServer = Infrastructure.FindOnPath("redis-server") ?? throw new DistributedApplicationException(
        "TaskManager needs Redis 7, and neither way to get it works here: no container runtime answers " +
        "(start Docker or Podman so that 'docker info' succeeds), and no 'redis-server' is on PATH " +
        "(install it, for example 'apt-get install redis-server' or 'brew install redis').");
    var dataDirectory = settings["RedisDataDirectory"] is { Length: > 0 } configured
        ? Path.GetFullPath(configured)
        : Path.Combine(builder.AppHostDirectory, ".data", "redis");
    Directory.CreateDirectory(dataDirectory);

    // Letters and digits only: StackExchange.Redis connection strings cannot carry some symbols.
    var password = builder.AddParameter("redis-password",
        new GenerateParameterDefault { MinLength = 32, Special = false }, secret: true);
    // Not proxied: every Redis call would otherwise take an extra hop through Aspire's proxy.
    var port = Infrastructure.FreeLoopbackPort();
    var local = builder.AddResource(new LocalRedisResource("redis", redisServer, dataDirectory, password.Resource))
        .WithEndpoint(port: port, targetPort: port, scheme: "tcp", name: LocalRedisResource.EndpointName, isProxied: false)
        .WithArgs(context =>
        {
            context.Args.Add("--bind");
            context.Args.Add("127.0.0.1");
            context.Args.Add("--port");
            context.Args.Add(port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            context.Args.Add("--requirepass");
            context.Args.Add(password.Resource);
            // Every acknowledged write reaches the append-only file within a second.
            context.Args.Add("--appendonly");
            context.Args.Add("yes");
            context.Args.Add("--appendfsync");
            context.Args.Add("everysec");
            context.Args.Add("--dir");
            context.Args.Add(dataDirectory);
            context.Args.Add("--save");
            context.Args.Add("");
        })
        .WithHealthCheck("redis-ping");
    builder.Services.AddHealthChecks().AddAsyncCheck("redis-ping", async ct =>
        await Infrastructure.PingRedisAsync(port, await password.Resource.GetValueAsync(ct) ?? "", ct));
    redis = local;
}

// Development keys, generated once and kept in the AppHost's user secrets; the dashboard shows
// them under Parameters. A client key for the tenant "dev", an admin key, a worker token.
var apiKey = builder.AddParameter("api-key", new GenerateParameterDefault { MinLength = 32, Special = false }, secret: true, persist: true);
var adminKey = builder.AddParameter("admin-key", new GenerateParameterDefault { MinLength = 32, Special = false }, secret: true, persist: true);
var workerToken = builder.AddParameter("worker-token", new GenerateParameterDefault { MinLength = 32, Special = false }, secret: true, persist: true);

var api = builder.AddProject<Projects.TaskManager_Api>("api")
    .WithEnvironment("TaskManager__Role", "api")
    .WithEnvironment("TaskManager__ApiKeys__0__Key", apiKey)
    .WithEnvironment("TaskManager__ApiKeys__0__Tenant", "dev")
    .WithEnvironment("TaskManager__AdminKeys__0", adminKey)
    .WithEnvironment("TaskManager__WorkerTokens__0", workerToken)
    .WithReference(redis)
    .WaitFor(redis)
    // With replicas the "http" endpoint (port 8084 from the launch profile) is Aspire's proxy,
    // which spreads connections over the replicas, each listening on a port of its own. The URLs
    // below, the dashboard commands and the worker's reference go through that proxy: whichever
    // replica answers, what they read or change is in Redis. So does the health check, which
    // therefore says that a replica answers, not which.
    .WithReplicas(apiReplicas)
    .WithHttpHealthCheck("/health");
var apiHttp = api.GetEndpoint("http");
api.WithUrl(ReferenceExpression.Create($"{apiHttp}/scalar"), "API reference")
    .WithUrl(ReferenceExpression.Create($"{apiHttp}/hangfire"), "Hangfire");

// Dashboard commands on the api resource: pause and resume each queue, drain a worker. They call
// the admin API with the admin key, as an operator would.
async Task AuthorizeAsAdmin(HttpCommandRequestContext context) =>
    context.Request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
        "Bearer", await adminKey.Resource.GetValueAsync(context.CancellationToken));
foreach (var type in (string[])["llm", "sd", "tts", "image_to_text"])
{
    api.WithHttpCommand($"/api/admin/queues/{type}/pause", $"Pause {type} queue", commandName: $"pause-{type}", commandOptions: new HttpCommandOptions
    {
        Method = HttpMethod.Post,
        PrepareRequest = AuthorizeAsAdmin,
        Description = $"Accept {type} tasks but give workers none until resumed.",
        IconName = "Pause",
    });
    api.WithHttpCommand($"/api/admin/queues/{type}/resume", $"Resume {type} queue", commandName: $"resume-{type}", commandOptions: new HttpCommandOptions
    {
        Method = HttpMethod.Post,
        PrepareRequest = AuthorizeAsAdmin,
        IconName = "Play",
    });
}
api.WithCommand("drain-worker", "Drain a worker…", async context =>
{
    var interactions = context.Services.GetRequiredService<IInteractionService>();
    var answer = await interactions.PromptInputAsync("Drain a worker",
        "The worker gets no new tasks and finishes what it runs. Its id is in GET /api/tasks/workers/health.",
        new InteractionInput { Name = "worker", Label = "Worker id", InputType = InputType.Text, Required = true, Placeholder = "w_..." },
        cancellationToken: context.CancellationToken);
    if (answer.Canceled || string.IsNullOrWhiteSpace(answer.Data?.Value))
    {
        return CommandResults.Canceled();
    }
    using var http = new HttpClient { BaseAddress = new Uri(await apiHttp.GetValueAsync(context.CancellationToken) ?? "") };
    http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
        "Bearer", await adminKey.Resource.GetValueAsync(context.CancellationToken));
    var response = await http.PostAsync($"/api/admin/workers/{Uri.EscapeDataString(answer.Data.Value.Trim())}/drain", null, context.CancellationToken);
    return response.IsSuccessStatusCode
        ? CommandResults.Success()
        : CommandResults.Failure($"The API answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(context.CancellationToken)}");
}, new CommandOptions { Description = "Stop giving a worker new tasks; it finishes what it runs.", IconName = "ArrowExit" });

builder.AddProject<Projects.TaskManager_Api>("scheduler", launchProfileName: null)
    .WithHttpEndpoint(name: "http")
    .WithEnvironment("ASPNETCORE_ENVIRONMENT", builder.Environment.EnvironmentName)
    .WithEnvironment("TaskManager__Role", "scheduler")
    // Development: webhooks may reach a receiver on this machine (refused by default).
    .WithEnvironment("TaskManager__Webhooks__AllowPrivateTargets", "true")
    .WithReference(redis)
    .WaitFor(redis)
    // Each replica runs its own Hangfire server (named after its process id) and sweeps; each
    // sweep claims its tasks inside one Lua script, so replicas never handle a task twice. The
    // endpoint serves only /health and stays proxied: Aspire refuses replicas of a proxy-less one.
    .WithReplicas(schedulerReplicas)
    .WithHttpHealthCheck("/health");

// The platform's gateway (TaskManager:Gateway=true): a YARP reverse proxy on 8080 (its launch
// profile) routing /api/tasks/* and /api/health to the api, which it finds by service discovery.
if (Flag("Gateway"))
{
    var gateway = builder.AddProject<Projects.TaskManager_Gateway>("gateway")
        .WithReference(apiHttp)
        .WaitFor(api)
        .WithHttpHealthCheck("/health");
    var gatewayHttp = gateway.GetEndpoint("http");
    gateway.WithUrl(ReferenceExpression.Create($"{gatewayHttp}/api/health"), "API health through the gateway");
}

// The operator console: a client of the API (found by service discovery, like the gateway), never
// of Redis; its address is the resource's URL on the dashboard. Sign in with api-key or admin-key.
var web = builder.AddProject<Projects.TaskManager_Web>("web")
    .WithReference(apiHttp)
    .WaitFor(api)
    .WithHttpHealthCheck("/health");
web.WithUrlForEndpoint("http", url => url.DisplayText = "Console");

var workerDirectory = Path.GetFullPath(Path.Combine(builder.AppHostDirectory, "..", "worker"));
if (useContainers)
{
    var container = builder.AddDockerfile("worker", workerDirectory);
    // GPUs are passed through only where the host has NVIDIA's driver: '--gpus all' fails elsewhere.
    if (Infrastructure.FindOnPath("nvidia-smi") is not null)
    {
        container.WithContainerRuntimeArgs("--gpus", "all");
    }
    ConfigureWorker(container);
}
else
{
    var python = settings["Python"] ?? "python3";
    if (Infrastructure.FindOnPath(python) is null)
    {
        throw new DistributedApplicationException($"The worker needs Python 3.11 or newer: '{python}' is not on PATH (set TaskManager:Python).");
    }
    ConfigureWorker(builder.AddExecutable("worker", python, workerDirectory, "-m", "taskmanager_worker"));
}

builder.Build().Run();

// TaskManager:{name}: true or false (false when not set).
bool Flag(string name) => settings[name] switch
{
    null or "" => false,
    var value when bool.TryParse(value.Trim(), out var flag) => flag,
    var value => throw new DistributedApplicationException($"TaskManager:{name} must be true or false, not '{value}'."),
};

// TaskManager:{name}: a whole number of processes, 1 or more (1 when not set).
int Replicas(string name)
{
    var value = settings[name];
    if (string.IsNullOrWhiteSpace(value))
    {
        return 1;
    }
    if (!int.TryParse(value.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var replicas) || replicas < 1)
    {
        throw new DistributedApplicationException(
            $"TaskManager:{name} must be a whole number of 1 or more (how many processes to run), not '{value}'.");
    }
    return replicas;
}

// The worker finds the API by service discovery (services__api__http__0), as Aspire passes it.
void ConfigureWorker<T>(IResourceBuilder<T> worker) where T : IResourceWithEnvironment, IResourceWithWaitSupport =>
    worker
        .WithReference(apiHttp)
        .WithEnvironment("TASKMANAGER_WORKER_TOKEN", workerToken)
        .WithEnvironment("TASKMANAGER_BACKEND", settings["WorkerBackend"] ?? "sim")
        .WithEnvironment("TASKMANAGER_CAPACITY", settings["WorkerCapacity"] ?? "1")
        .WithEnvironment("PYTHONUNBUFFERED", "1")
        .WithOtlpExporter()
        .WaitFor(api);
