using System.IO.Pipelines;

namespace Coordination.Server.Network;

/// <summary>
/// A client connection inside the process, with no socket: two pipes, the server's ends read and written by a
/// <see cref="ClientConnection"/> (so the frames, the session actor and every bound are the client port's), and
/// the client's ends as one duplex <see cref="Stream"/> for <c>CoordinationClientOptions.Connector</c>.
/// </summary>
public static class InProcessConnection
{
    // Backpressure as a socket's buffers give it: a writer that runs 1 MiB ahead of its reader waits.
    private static readonly PipeOptions Options = new(pauseWriterThreshold: 1 << 20, resumeWriterThreshold: 1 << 19, useSynchronizationContext: false);

    /// <summary>The server's connection and the client's stream of one new in-process link.</summary>
    public static (ClientConnection Server, Stream Client) Create(ClientPortLimits limits) => Create(limits, memberHost: false);

    /// <summary>As <see cref="Create(ClientPortLimits)"/>; <paramref name="memberHost"/>: the member's own host's link
    /// (its session is the super user, see <see cref="ClientConnection.MemberHost"/>).</summary>
    internal static (ClientConnection Server, Stream Client) Create(ClientPortLimits limits, bool memberHost)
    {
        var toServer = new Pipe(Options);
        var toClient = new Pipe(Options);
        return (new ClientConnection(toServer.Reader, toClient.Writer, limits, memberHost), new ClientStream(toClient.Reader, toServer.Writer));
    }

    /// <summary>The client's end: reads what the server wrote, writes what the server reads; disposing it is the
    /// client closing its connection.</summary>
    private sealed class ClientStream(PipeReader reader, PipeWriter writer) : Stream
    {
        private readonly Stream _in = reader.AsStream();
        private readonly Stream _out = writer.AsStream();
        private int _disposed;

        public override bool CanRead => true;
        public override bool CanWrite => true;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override int Read(byte[] buffer, int offset, int count) => _in.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => _in.ReadAsync(buffer, ct);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => _in.ReadAsync(buffer, offset, count, ct);
        public override void Write(byte[] buffer, int offset, int count) => _out.Write(buffer, offset, count);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default) => _out.WriteAsync(buffer, ct);
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => _out.WriteAsync(buffer, offset, count, ct);
        public override void Flush() => _out.Flush();
        public override Task FlushAsync(CancellationToken ct) => _out.FlushAsync(ct);

        protected override void Dispose(bool disposing)
        {
            if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                // Completing both ends tells the server the client closed (its read ends), as a FIN would.
                reader.Complete();
                writer.Complete();
            }
            base.Dispose(disposing);
        }
    }
}
