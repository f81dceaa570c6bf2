using System.Globalization;
using System.Text;
using Akka.Configuration;
using Coordination.Core.Zab;
using Coordination.Server.Persistence;

namespace Coordination.Server.Ensemble;

/// <summary>
/// A member's dynamic configuration on disk, as ZooKeeper's <c>zoo.cfg.dynamic.&lt;version&gt;</c> in the data dir: the
/// latest committed membership (written temp, fsync, rename, fsync of the directory; older files removed after), read
/// back at start in place of the HOCON's voters and observers, so that a restarted member rejoins with what the
/// ensemble decided, not with what it was first given.
/// </summary>
public static class DynamicConfigFile
{
    public const string Prefix = "zoo.cfg.dynamic.";

    /// <summary>The membership of <paramref name="settings"/> in ZooKeeper's text form: the member port as the quorum port,
    /// 0 as the election port (a member has none; ZooKeeper's clients refuse a line whose two ports are equal).</summary>
    public static DynamicConfig Of(EnsembleSettings settings)
    {
        MemberSpec Spec(long id, string endpoint, bool observer)
        {
            EnsembleSettings.TrySplit(endpoint, out var host, out var port);
            string? clientHost = null;
            var clientPort = 0;
            if (settings.ClientAddresses.TryGetValue(id, out var client)) EnsembleSettings.TrySplit(client, out clientHost, out clientPort);
            return new MemberSpec(id, host, port, 0, observer, clientHost, clientPort);
        }
        return new DynamicConfig(
            settings.Voters.Select(kv => Spec(kv.Key, kv.Value, false)).Concat(settings.Observers.Select(kv => Spec(kv.Key, kv.Value, true))),
            settings.ConfigVersion);
    }

    /// <summary>
    /// The settings with the membership of the newest dynamic config file in <paramref name="dataDir"/>, if any. A file
    /// without <paramref name="serverId"/> was written when a reconfig removed this server: it starts again as a joiner
    /// (that membership plus its own line from the HOCON), which serves nothing and which no member links with until a
    /// reconfig adds it back. ZooKeeper 3.8 refuses to start then ("My id N not in the peer list", QuorumPeer.start),
    /// so that an operator who restarts every machine of a shrunk ensemble by habit loses that machine until its
    /// data dir is edited.
    /// </summary>
    public static EnsembleSettings Apply(EnsembleSettings settings, string dataDir, long serverId)
    {
        if (!settings.Enabled || Load(dataDir) is not { } config) return settings;
        if (!config.Members.Any(m => m.Id == serverId) && Of(settings).Members.FirstOrDefault(m => m.Id == serverId) is { } self)
            config = new DynamicConfig(config.Members.Append(self), config.Version);
        return settings with
        {
            Voters = config.Members.Where(m => !m.Observer).ToDictionary(m => m.Id, m => m.Endpoint),
            Observers = config.Members.Where(m => m.Observer).ToDictionary(m => m.Id, m => m.Endpoint),
            ClientAddresses = config.Members.Where(m => m.ClientPort > 0).ToDictionary(m => m.Id, m => $"{m.ClientHost ?? "0.0.0.0"}:{m.ClientPort}"),
            ConfigVersion = config.Version,
        };
    }

    /// <summary>The newest dynamic configuration in <paramref name="dataDir"/>, or null when there is none.</summary>
    public static DynamicConfig? Load(string dataDir)
    {
        if (Newest(dataDir) is not { } path) return null;
        return DynamicConfig.Parse(File.ReadAllText(path), out var error) ?? throw new ConfigurationException($"{path} is corrupt: {error}");
    }

    /// <summary>Writes <paramref name="config"/> durably; only then removes older files (a crash leaves the newest readable).</summary>
    public static void Save(string dataDir, DynamicConfig config)
    {
        var path = Path.Combine(dataDir, Prefix + config.Version.ToString("x", CultureInfo.InvariantCulture));
        SnapshotFiles.WriteDurably(path, s => s.Write(Encoding.UTF8.GetBytes(config + "\n")));
        foreach (var (version, old) in Files(dataDir))
            if (version < config.Version) File.Delete(old);
    }

    private static string? Newest(string dataDir) => Files(dataDir).OrderByDescending(f => f.Version).Select(f => f.Path).FirstOrDefault();

    private static IEnumerable<(long Version, string Path)> Files(string dataDir)
    {
        if (!Directory.Exists(dataDir)) yield break;
        foreach (var path in Directory.EnumerateFiles(dataDir, Prefix + "*"))
            if (long.TryParse(Path.GetFileName(path).AsSpan(Prefix.Length), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var version))
                yield return (version, path);
    }
}
