using Coordination.Cli;

return await CoordCli.MainAsync(args);
