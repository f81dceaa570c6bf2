using System.IO.Pipelines;
using System.Net.Security;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using BenchmarkDotNet.Attributes;

namespace Coordination.Benchmarks;

/// <summary>
/// What one TLS record costs, sockets left out (issue 17's throughput share): one record of <see cref="Bytes"/>
/// encrypted by one side and decrypted by the other, through SslStream (what the server and clients use) and through
/// OpenSSL's own SSL_write/SSL_read on memory BIOs (the floor a custom engine could reach on the same libssl).
/// Under load the server writes one record per ~16 replies (perf count in the issue 17 note), so a record's cost
/// divided by 16 is what TLS adds to each reply.
/// </summary>
[MemoryDiagnoser]
public class TlsRecordBenchmarks
{
    [Params(100, 1600, 16000)]
    public int Bytes { get; set; }

    private SslStream _client = null!, _server = null!;
    private OpenSslPair _openSsl = null!;
    private byte[] _payload = null!, _buffer = null!;
    private ECDsa _key = null!;

    [GlobalSetup]
    public void Setup()
    {
        _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var selfSigned = new CertificateRequest("CN=localhost", _key, HashAlgorithmName.SHA256)
            .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var certificate = X509CertificateLoader.LoadPkcs12(selfSigned.Export(X509ContentType.Pfx), null);
        var toServer = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        var toClient = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        _client = new SslStream(new PipeDuplex(toClient.Reader, toServer.Writer), false, (_, _, _, _) => true);
        _server = new SslStream(new PipeDuplex(toServer.Reader, toClient.Writer), false);
        Task.WhenAll(_client.AuthenticateAsClientAsync("localhost"), _server.AuthenticateAsServerAsync(certificate)).GetAwaiter().GetResult();
        _openSsl = new OpenSslPair(certificate, _key);
        _payload = new byte[Bytes];
        _buffer = new byte[64 * 1024];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _server.Dispose();
        _openSsl.Dispose();
        _key.Dispose();
    }

    [Benchmark(Baseline = true, Description = "SslStream: write one record, read it")]
    public async Task SslStreamRecord()
    {
        await _client.WriteAsync(_payload);
        var got = 0;
        while (got < _payload.Length) got += await _server.ReadAsync(_buffer.AsMemory(got, _payload.Length - got));
    }

    [Benchmark(Description = "OpenSSL memory BIOs: SSL_write one record, SSL_read it")]
    public void OpenSslRecord() => _openSsl.Transfer(_payload, _buffer);

    /// <summary>A stream over two pipes: SslStream's transport without a socket.</summary>
    private sealed class PipeDuplex(PipeReader reader, PipeWriter writer) : Stream
    {
        private readonly Stream _in = reader.AsStream(), _out = writer.AsStream();
        public override bool CanRead => true;
        public override bool CanWrite => true;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _in.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => _in.ReadAsync(buffer, ct);
        public override void Write(byte[] buffer, int offset, int count) => _out.Write(buffer, offset, count);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default) => _out.WriteAsync(buffer, ct);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>
/// A TLS client and server of the system's libssl 3 joined by memory BIOs: the handshake is pumped in memory, then
/// <see cref="Transfer"/> moves one record from client to server. Benchmark code only (no certificate checks).
/// </summary>
internal sealed unsafe class OpenSslPair : IDisposable
{
    private const string Ssl = "libssl.so.3", Crypto = "libcrypto.so.3";
    [DllImport(Ssl)] private static extern IntPtr TLS_server_method();
    [DllImport(Ssl)] private static extern IntPtr TLS_client_method();
    [DllImport(Ssl)] private static extern IntPtr SSL_CTX_new(IntPtr method);
    [DllImport(Ssl)] private static extern void SSL_CTX_free(IntPtr ctx);
    [DllImport(Ssl)] private static extern int SSL_CTX_use_certificate(IntPtr ctx, IntPtr x509);
    [DllImport(Ssl)] private static extern int SSL_CTX_use_PrivateKey(IntPtr ctx, IntPtr key);
    [DllImport(Ssl)] private static extern IntPtr SSL_new(IntPtr ctx);
    [DllImport(Ssl)] private static extern void SSL_free(IntPtr ssl);
    [DllImport(Ssl)] private static extern void SSL_set_bio(IntPtr ssl, IntPtr rbio, IntPtr wbio);
    [DllImport(Ssl)] private static extern void SSL_set_accept_state(IntPtr ssl);
    [DllImport(Ssl)] private static extern void SSL_set_connect_state(IntPtr ssl);
    [DllImport(Ssl)] private static extern int SSL_do_handshake(IntPtr ssl);
    [DllImport(Ssl)] private static extern int SSL_read(IntPtr ssl, byte* buffer, int count);
    [DllImport(Ssl)] private static extern int SSL_write(IntPtr ssl, byte* buffer, int count);
    [DllImport(Crypto)] private static extern IntPtr BIO_s_mem();
    [DllImport(Crypto)] private static extern IntPtr BIO_new(IntPtr method);
    [DllImport(Crypto)] private static extern int BIO_free(IntPtr bio);
    [DllImport(Crypto)] private static extern int BIO_read(IntPtr bio, byte* buffer, int count);
    [DllImport(Crypto)] private static extern int BIO_write(IntPtr bio, byte* buffer, int count);
    [DllImport(Crypto)] private static extern IntPtr BIO_new_mem_buf(byte* buffer, int count);
    [DllImport(Crypto)] private static extern IntPtr PEM_read_bio_X509(IntPtr bio, IntPtr x, IntPtr callback, IntPtr state);
    [DllImport(Crypto)] private static extern IntPtr PEM_read_bio_PrivateKey(IntPtr bio, IntPtr x, IntPtr callback, IntPtr state);
    [DllImport(Crypto)] private static extern void X509_free(IntPtr x509);
    [DllImport(Crypto)] private static extern void EVP_PKEY_free(IntPtr key);

    private readonly record struct End(IntPtr Ssl, IntPtr In, IntPtr Out);
    private readonly IntPtr _serverContext, _clientContext;
    private readonly End _client, _server;

    public OpenSslPair(X509Certificate2 certificate, ECDsa key)
    {
        _serverContext = SSL_CTX_new(TLS_server_method());
        _clientContext = SSL_CTX_new(TLS_client_method());
        var x509 = ReadPem(certificate.ExportCertificatePem(), isCertificate: true);
        var privateKey = ReadPem(key.ExportPkcs8PrivateKeyPem(), isCertificate: false);
        if (SSL_CTX_use_certificate(_serverContext, x509) != 1 || SSL_CTX_use_PrivateKey(_serverContext, privateKey) != 1)
            throw new InvalidOperationException("libssl refused the certificate or key");
        X509_free(x509);   // the context holds its own references
        EVP_PKEY_free(privateKey);
        _server = NewEnd(_serverContext);
        _client = NewEnd(_clientContext);
        SSL_set_accept_state(_server.Ssl);
        SSL_set_connect_state(_client.Ssl);
        var scratch = new byte[64 * 1024];
        for (var round = 0; round < 10 && (SSL_do_handshake(_client.Ssl) != 1 | SSL_do_handshake(_server.Ssl) != 1); round++)
        {
            Pump(_client, _server, scratch);
            Pump(_server, _client, scratch);
        }
        if (SSL_do_handshake(_client.Ssl) != 1 || SSL_do_handshake(_server.Ssl) != 1) throw new InvalidOperationException("TLS handshake did not complete");
        Pump(_server, _client, scratch);   // TLS 1.3 session tickets
    }

    /// <summary>The client writes <paramref name="payload"/> as one record; the server reads it back whole.</summary>
    public void Transfer(byte[] payload, byte[] buffer)
    {
        fixed (byte* source = payload)
        fixed (byte* target = buffer)
        {
            if (SSL_write(_client.Ssl, source, payload.Length) != payload.Length) throw new InvalidOperationException("SSL_write failed");
            var sealedBytes = BIO_read(_client.Out, target, buffer.Length);
            BIO_write(_server.In, target, sealedBytes);
            for (var got = 0; got < payload.Length;)
            {
                var n = SSL_read(_server.Ssl, target + got, buffer.Length - got);
                if (n <= 0) throw new InvalidOperationException("SSL_read failed");
                got += n;
            }
        }
    }

    private static IntPtr ReadPem(string pem, bool isCertificate)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(pem);
        fixed (byte* p = bytes)
        {
            var bio = BIO_new_mem_buf(p, bytes.Length);
            var result = isCertificate ? PEM_read_bio_X509(bio, 0, 0, 0) : PEM_read_bio_PrivateKey(bio, 0, 0, 0);
            BIO_free(bio);
            return result != 0 ? result : throw new InvalidOperationException("libcrypto could not read the PEM");
        }
    }

    private static End NewEnd(IntPtr context)
    {
        var ssl = SSL_new(context);
        var input = BIO_new(BIO_s_mem());
        var output = BIO_new(BIO_s_mem());
        SSL_set_bio(ssl, input, output);   // the SSL object owns both BIOs from here
        return new End(ssl, input, output);
    }

    private static void Pump(End from, End to, byte[] scratch)
    {
        fixed (byte* p = scratch)
            for (int n; (n = BIO_read(from.Out, p, scratch.Length)) > 0;) BIO_write(to.In, p, n);
    }

    public void Dispose()
    {
        SSL_free(_client.Ssl);
        SSL_free(_server.Ssl);
        SSL_CTX_free(_clientContext);
        SSL_CTX_free(_serverContext);
    }
}
