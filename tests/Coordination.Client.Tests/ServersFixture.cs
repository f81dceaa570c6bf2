using Coordination.TestKit;
using Xunit;

namespace Coordination.Client.Tests;

/// <summary>One server of each kind, started on first use and shared by the tests of a class (each test uses its own root node).</summary>
public sealed class ServersFixture : IAsyncLifetime
{
    private readonly Dictionary<string, Task<ServerProcess>> _servers = new();
    private readonly object _lock = new();

    public Task<ServerProcess> Get(string target)
    {
        Targets.SkipIfUnavailable(target);
        lock (_lock)
        {
            if (!_servers.TryGetValue(target, out var task) || task.IsFaulted || (task.IsCompletedSuccessfully && task.Result.HasExited))
                _servers[target] = task = ServerProcess.StartAsync(target);
            return task;
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var task in _servers.Values)
            try { await (await task).DisposeAsync(); } catch { }
    }

    /// <summary>
    /// Runs a test body against the class's shared server for <paramref name="target"/>, after creating the test's
    /// own chroot node when it has one; on failure prints the server's output tail.
    /// </summary>
    public async Task RunAsync(string target, string? chroot, Xunit.Abstractions.ITestOutputHelper output, Func<ServerProcess, Task> body)
    {
        var server = await Get(target);
        if (chroot is not null)
            await using (var setup = await Targets.ConnectAsync(server, output))
                await setup.CreateAsync(chroot, []).Within();
        try { await body(server); }
        catch
        {
            output.WriteLine($"--- {server.Kind} server output tail ---\n{server.OutputTail}");
            throw;
        }
    }
}
