return await TaskManager.Cli.Cli.RunAsync(args);
