using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Coordination.TestKit;

/// <summary>
/// A throwaway Kerberos realm for tests: MIT krb5 (Debian's krb5-kdc, krb5-admin-server) with its database, stash,
/// krb5.conf and kdc.conf in a temporary directory, and a KDC (<c>krb5kdc -n</c>) on 127.0.0.1 at a free port (TCP
/// and UDP; clients are told to prefer TCP). Principals get random keys; <see cref="ExportKeytab"/> writes a keytab
/// and, as kadmin's ktadd does, gives the principal a new key, so an earlier keytab of it is stale afterwards.
/// Every command is bounded in time; dispose stops the KDC and deletes the directory.
/// </summary>
public sealed class KerberosRealm : IAsyncDisposable
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);
    private static readonly string[] Tools = ["/usr/sbin/krb5kdc", "/usr/sbin/kdb5_util", "/usr/sbin/kadmin.local"];

    private readonly Process _kdc;
    private readonly StringBuilder _kdcOutput = new();

    public string Realm { get; }
    public string Directory { get; }
    public int Port { get; }
    /// <summary>The clients' krb5.conf: default realm <see cref="Realm"/>, its KDC, no DNS or reverse lookups.</summary>
    public string Krb5Conf { get; }
    private string KdcConf => Path.Combine(Directory, "kdc.conf");

    private KerberosRealm(string realm, string directory, int port, string krb5Conf, Process kdc)
    {
        Realm = realm;
        Directory = directory;
        Port = port;
        Krb5Conf = krb5Conf;
        _kdc = kdc;
    }

    /// <summary>The first missing MIT Kerberos tool (and its Debian package), or null when all are installed.</summary>
    public static string? MissingTool() =>
        Tools.FirstOrDefault(t => !File.Exists(t)) is { } t ? $"{t} (Debian packages krb5-kdc, krb5-admin-server)" : null;

    /// <summary>Creates the realm's database and starts its KDC; throws with the tools' output when that fails.</summary>
    public static async Task<KerberosRealm> StartAsync(string realm = "TEST.REALM")
    {
        if (MissingTool() is { } missing) throw new InvalidOperationException("Kerberos tool missing: " + missing);
        var dir = Path.Combine(Path.GetTempPath(), $"krb5-realm-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(dir);
        try
        {
            var port = FreePort();
            var krb5Conf = Path.Combine(dir, "krb5.conf");
            File.WriteAllText(krb5Conf, $"""
                [libdefaults]
                  default_realm = {realm}
                  dns_lookup_realm = false
                  dns_lookup_kdc = false
                  dns_canonicalize_hostname = false
                  rdns = false
                  udp_preference_limit = 1
                  ticket_lifetime = 1h
                [realms]
                  {realm} = {"{"}
                    kdc = 127.0.0.1:{port}
                  {"}"}
                [domain_realm]
                  localhost = {realm}

                """);
            File.WriteAllText(Path.Combine(dir, "kdc.conf"), $"""
                [kdcdefaults]
                  kdc_listen = 127.0.0.1:{port}
                  kdc_tcp_listen = 127.0.0.1:{port}
                [realms]
                  {realm} = {"{"}
                    database_name = {dir}/principal
                    key_stash_file = {dir}/stash
                    acl_file = {dir}/kadm5.acl
                    max_life = 1h
                    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
                  {"}"}
                [logging]
                  kdc = FILE:{dir}/kdc.log

                """);
            File.WriteAllText(Path.Combine(dir, "kadm5.acl"), "");
            Run(dir, krb5Conf, "/usr/sbin/kdb5_util", "create", "-s", "-r", realm, "-P", "master-" + Guid.NewGuid().ToString("N"));

            var kdc = new Process { StartInfo = Start(dir, krb5Conf, "/usr/sbin/krb5kdc", "-n", "-r", realm) };
            var result = new KerberosRealm(realm, dir, port, krb5Conf, kdc);
            kdc.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (result._kdcOutput) result._kdcOutput.AppendLine(e.Data); };
            kdc.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (result._kdcOutput) result._kdcOutput.AppendLine(e.Data); };
            kdc.Start();
            kdc.BeginOutputReadLine();
            kdc.BeginErrorReadLine();
            try
            {
                await result.WaitUntilListeningAsync().ConfigureAwait(false);
            }
            catch
            {
                await result.DisposeAsync().ConfigureAwait(false);
                throw;
            }
            return result;
        }
        catch
        {
            TryDelete(dir);
            throw;
        }
    }

    /// <summary>
    /// Points this process's Kerberos library at the realm (KRB5_CONFIG), for servers running inside the test process
    /// (<see cref="TestEnsemble"/>). libkrb5 reads it with getenv, which .NET's own environment does not reach on Linux,
    /// hence libc's setenv; call it before the servers start.
    /// </summary>
    public void UseInThisProcess()
    {
        if (setenv("KRB5_CONFIG", Krb5Conf, 1) != 0) throw new InvalidOperationException("setenv KRB5_CONFIG failed");
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int setenv(string name, string value, int overwrite);

    /// <summary>Adds <paramref name="principal"/> with the password <paramref name="password"/> (a client that logs in
    /// with it rather than a keytab).</summary>
    public void AddPrincipal(string principal, string password) => Admin($"addprinc -pw {password} {Qualify(principal)}");

    /// <summary>"name@REALM" for a name without a realm.</summary>
    public string Qualify(string principal) => principal.Contains('@') ? principal : principal + "@" + Realm;

    /// <summary>Adds <paramref name="principal"/> (qualified with the realm when it has none) with a random key.</summary>
    public void AddPrincipal(string principal) => Admin($"addprinc -randkey {Qualify(principal)}");

    /// <summary>
    /// Gives each of <paramref name="principals"/> a new random key and writes them to one new keytab file
    /// (returned); a keytab exported earlier for one of them no longer matches what the KDC issues tickets with.
    /// </summary>
    public string ExportKeytab(params string[] principals)
    {
        var path = Path.Combine(Directory, $"{principals[0].Replace('/', '_').Replace('@', '_')}-{Guid.NewGuid():N}.keytab");
        Admin($"ktadd -k {path} {string.Join(' ', principals.Select(Qualify))}");
        return path;
    }

    /// <summary>The KDC's log (issued and refused tickets), for a failing test's message.</summary>
    public string KdcLog()
    {
        var log = Path.Combine(Directory, "kdc.log");
        string text;
        lock (_kdcOutput) text = _kdcOutput.ToString();
        return File.Exists(log) ? text + File.ReadAllText(log) : text;
    }

    private void Admin(string query) => Run(Directory, Krb5Conf, "/usr/sbin/kadmin.local", "-r", Realm, "-q", query);

    private static ProcessStartInfo Start(string dir, string krb5Conf, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["KRB5_CONFIG"] = krb5Conf;
        psi.Environment["KRB5_KDC_PROFILE"] = Path.Combine(dir, "kdc.conf");
        return psi;
    }

    private static void Run(string dir, string krb5Conf, string file, params string[] args)
    {
        using var p = Process.Start(Start(dir, krb5Conf, file, args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(CommandTimeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {CommandTimeout}");
        }
        p.WaitForExit();
        var output = stdout.Result + stderr.Result;
        // kadmin.local exits 0 even when its query fails; its failures say so on stderr.
        if (p.ExitCode != 0 || stderr.Result.Contains("while ", StringComparison.Ordinal))
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {output}");
    }

    private async Task WaitUntilListeningAsync()
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < CommandTimeout)
        {
            if (_kdc.HasExited) throw new InvalidOperationException($"krb5kdc exited ({_kdc.ExitCode}): {KdcLog()}");
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await s.ConnectAsync(IPAddress.Loopback, Port).ConfigureAwait(false);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50).ConfigureAwait(false);
            }
        }
        throw new TimeoutException($"krb5kdc is not listening on 127.0.0.1:{Port} after {CommandTimeout}: {KdcLog()}");
    }

    /// <summary>A loopback port free for TCP and UDP at the time of the call.</summary>
    private static int FreePort()
    {
        for (var attempt = 0; ; attempt++)
        {
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            tcp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)tcp.LocalEndPoint!).Port;
            try
            {
                using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                udp.Bind(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException) when (attempt < 20) { }
        }
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            if (!_kdc.HasExited)
            {
                _kdc.Kill(entireProcessTree: true);
                _kdc.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException) { }   // never started or already gone
        _kdc.Dispose();
        TryDelete(Directory);
        return ValueTask.CompletedTask;
    }

    private static void TryDelete(string dir)
    {
        try { System.IO.Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
