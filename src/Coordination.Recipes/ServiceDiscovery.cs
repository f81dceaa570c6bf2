using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Recipes;

/// <summary>
/// One registered instance of a service, stored as JSON in <c>/services/&lt;name&gt;/&lt;id&gt;</c> with Curator's
/// field names (name, id, address, port, sslPort, payload, registrationTimeUTC, serviceType), so Curator's
/// service discovery reads our registrations and we read its (when the payload is JSON).
/// </summary>
public sealed record ServiceInstance(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("address")] string Address,
    [property: JsonPropertyName("port")] int? Port = null,
    [property: JsonPropertyName("payload")] JsonElement? Payload = null)
{
    [JsonPropertyName("sslPort")] public int? SslPort { get; init; }
    [JsonPropertyName("registrationTimeUTC")] public long RegistrationTimeUtc { get; init; } = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    [JsonPropertyName("serviceType")] public string ServiceType { get; init; } = "DYNAMIC";

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this);
    public static ServiceInstance FromJson(byte[] json) => JsonSerializer.Deserialize<ServiceInstance>(json) ?? throw new FormatException("empty service instance");

    internal static ServiceInstance? TryFromJson(byte[]? json)
    {
        if (json is null) return null;
        try { return FromJson(json); } catch (JsonException) { return null; } catch (FormatException) { return null; }
    }
}

/// <summary>
/// Service discovery (Curator's ServiceDiscovery): instances register as ephemeral nodes
/// <c>basePath/&lt;name&gt;/&lt;id&gt;</c> with a JSON payload and stay registered through session restarts (the node
/// goes when the process dies); anyone can query names and instances, or keep a <see cref="ServiceCache"/> that
/// follows a service's instances and reports changes.
/// </summary>
public sealed class ServiceDiscovery(CoordinationClient client, string basePath = "/services", IRetryPolicy? retry = null) : IAsyncDisposable
{
    private readonly IRetryPolicy _retry = retry ?? Waits.DefaultRetry();
    private readonly ConcurrentDictionary<string, PersistentEphemeralNode> _registered = new();

    public string BasePath => basePath;

    private string ServicePath(string name) => Paths.Join(basePath, name);
    private string InstancePath(ServiceInstance i) => Paths.Join(ServicePath(i.Name), i.Id);

    /// <summary>Registers (or re-registers with new data) an instance of this process.</summary>
    public async Task RegisterAsync(ServiceInstance instance, CancellationToken ct = default)
    {
        var path = InstancePath(instance);
        if (_registered.TryGetValue(path, out var existing)) { await existing.SetDataAsync(instance.ToJson(), ct).ConfigureAwait(false); return; }
        var node = new PersistentEphemeralNode(client, path, instance.ToJson(), _retry);
        if (!_registered.TryAdd(path, node)) { await RegisterAsync(instance, ct).ConfigureAwait(false); return; }
        await node.StartAsync(ct).ConfigureAwait(false);
    }

    public async Task UnregisterAsync(ServiceInstance instance)
    {
        if (_registered.TryRemove(InstancePath(instance), out var node)) await node.DisposeAsync().ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<string>> QueryForNamesAsync(CancellationToken ct = default)
    {
        try { return (await Waits.Retry(_retry, c => client.GetChildrenAsync(basePath, ct: c), ct).ConfigureAwait(false)).Children.Order(StringComparer.Ordinal).ToList(); }
        catch (NoNodeException) { return []; }
    }

    public async Task<IReadOnlyList<ServiceInstance>> QueryForInstancesAsync(string name, CancellationToken ct = default)
    {
        IReadOnlyList<string> ids;
        try { ids = (await Waits.Retry(_retry, c => client.GetChildrenAsync(ServicePath(name), ct: c), ct).ConfigureAwait(false)).Children; }
        catch (NoNodeException) { return []; }
        var result = new List<ServiceInstance>();
        foreach (var id in ids.Order(StringComparer.Ordinal))
            if (await QueryForInstanceAsync(name, id, ct).ConfigureAwait(false) is { } instance) result.Add(instance);
        return result;
    }

    /// <summary>One instance, or null when it is not registered (or its payload is not ours to read).</summary>
    public async Task<ServiceInstance?> QueryForInstanceAsync(string name, string id, CancellationToken ct = default)
    {
        try { return ServiceInstance.TryFromJson((await Waits.Retry(_retry, c => client.GetDataAsync(Paths.Join(ServicePath(name), id), ct: c), ct).ConfigureAwait(false)).Data); }
        catch (NoNodeException) { return null; }
    }

    /// <summary>A started cache of one service's instances.</summary>
    public async Task<ServiceCache> StartServiceCacheAsync(string name, CancellationToken ct = default)
    {
        var cache = new ServiceCache(client, ServicePath(name), _retry);
        await cache.StartAsync(ct).ConfigureAwait(false);
        return cache;
    }

    /// <summary>Unregisters every instance this object registered.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var key in _registered.Keys.ToList())
            if (_registered.TryRemove(key, out var node)) await node.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>The live instances of one service (Curator's ServiceCache); <see cref="Changed"/> fires after each change.</summary>
public sealed class ServiceCache : IAsyncDisposable
{
    private readonly TreeCache _cache;
    private readonly string _servicePath;

    internal ServiceCache(CoordinationClient client, string servicePath, IRetryPolicy retry)
    {
        _servicePath = servicePath;
        _cache = new TreeCache(client, servicePath, maxDepth: 1, retry);
        _cache.Changed += e => { if (e.Path != _servicePath && e.Type != CacheEventType.Initialized) Changed?.Invoke(); };
    }

    /// <summary>Raised when an instance registers, unregisters or changes.</summary>
    public event Action? Changed;

    public IReadOnlyList<ServiceInstance> Instances =>
        _cache.Nodes.Values.Where(n => n.Path != _servicePath).Select(n => ServiceInstance.TryFromJson(n.Data)).OfType<ServiceInstance>()
            .OrderBy(i => i.Id, StringComparer.Ordinal).ToList();

    internal Task StartAsync(CancellationToken ct) => _cache.StartAsync(ct);

    public ValueTask DisposeAsync() => _cache.DisposeAsync();
}
