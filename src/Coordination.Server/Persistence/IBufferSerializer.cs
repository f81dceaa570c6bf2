using System.Buffers;

namespace Coordination.Server.Persistence;

/// <summary>
/// A serializer that can also write an object's bytes (exactly what its <c>ToBinary</c> returns) into a buffer.
/// <see cref="FileEventJournal"/> then serializes such a payload on its log's writer thread, straight into the log's
/// write buffer, instead of allocating its bytes on the persistent actor's thread and copying them in.
/// <para>
/// The write runs on the writer thread while the persistent actor goes on, so the object must not change after it is
/// persisted, and the write must not need Akka's transport information (it serializes no actor refs). A write that
/// throws fails the whole group of writes it belongs to (their actors hear a persist failure), not only its own.
/// </para>
/// </summary>
public interface IBufferSerializer
{
    /// <summary>Appends <paramref name="obj"/>'s bytes to <paramref name="output"/>; it may patch bytes it wrote itself.</summary>
    void Write(object obj, ArrayBufferWriter<byte> output);
}
