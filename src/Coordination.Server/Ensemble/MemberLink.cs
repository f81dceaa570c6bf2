using System.Text;

namespace Coordination.Server.Ensemble;

/// <summary>
/// The member a link was authenticated as (<see cref="MemberHandshake"/>), and the check that keeps Akka's own
/// claims on that link to that member: every Akka PDU that names where it comes from (the ASSOCIATE's origin
/// address, a message envelope's sender path) must name this member's configured endpoint, or the link is closed.
/// So on the receiving side a sender's address belongs to exactly one authenticated member, and the actors can
/// take a message's author from its sender (PeerActor, ReplicaActor) instead of from a field of the message.
/// </summary>
public sealed class MemberLink(long memberId, string host, int port)
{
    public long MemberId { get; } = memberId;
    public string Endpoint => $"{host}:{port}";
    // Sender paths are compared as bytes: every message on the link carries one, and this runs per frame.
    private readonly byte[] _hostUtf8 = Encoding.UTF8.GetBytes(host);

    /// <summary>True when <paramref name="pdu"/> (one Akka.Remote frame) claims no address but this member's.
    /// Throws <see cref="MemberAuthException"/> for a PDU that is not well-formed protobuf.</summary>
    public bool Admits(ReadOnlySpan<byte> pdu, out string? claimed)
    {
        claimed = null;
        // AkkaProtocolMessage { bytes payload = 1; AkkaControlMessage instruction = 2; }
        var message = new ProtoReader(pdu);
        while (message.NextBytes(out var field, out var bytes))
        {
            if (field == 1 && !AdmitsPayload(bytes, out claimed)) return false;
            if (field == 2 && !AdmitsInstruction(bytes, out claimed)) return false;
        }
        return true;
    }

    // AckAndEnvelopeContainer { AcknowledgementInfo ack = 1; RemoteEnvelope envelope = 2; }
    // RemoteEnvelope { ActorRefData recipient = 1; Payload message = 2; ActorRefData sender = 4; fixed64 seq = 5; }
    // ActorRefData { string path = 1; }
    private bool AdmitsPayload(ReadOnlySpan<byte> container, out string? claimed)
    {
        claimed = null;
        foreach (var envelope in ProtoReader.Fields(container, 2))
        foreach (var sender in ProtoReader.Fields(envelope, 4))
        foreach (var path in ProtoReader.Fields(sender, 1))
        {
            if (PathIsMine(path)) continue;
            claimed = Encoding.UTF8.GetString(path);
            return false;
        }
        return true;
    }

    // AkkaControlMessage { CommandType commandType = 1; AkkaHandshakeInfo handshakeInfo = 2; }
    // AkkaHandshakeInfo { AddressData origin = 1; fixed64 uid = 2; string cookie = 3; }
    // AddressData { string system = 1; string hostname = 2; uint32 port = 3; string protocol = 4; }
    private bool AdmitsInstruction(ReadOnlySpan<byte> control, out string? claimed)
    {
        claimed = null;
        foreach (var info in ProtoReader.Fields(control, 2))
        foreach (var originBytes in ProtoReader.Fields(info, 1))
        {
            var origin = new ProtoReader(originBytes);
            var originHost = "";
            long originPort = 0;
            while (origin.Next(out var field, out var wire))
            {
                if (field == 2 && wire == 2) originHost = Encoding.UTF8.GetString(origin.Bytes());
                else if (field == 3 && wire == 0) originPort = origin.Varint();
                else origin.Skip(wire);
            }
            if (string.Equals(originHost, host, StringComparison.OrdinalIgnoreCase) && originPort == port) continue;
            claimed = $"{originHost}:{originPort}";
            return false;
        }
        return true;
    }

    /// <summary>"proto://system@host:port/path…" names this member's endpoint.</summary>
    private bool PathIsMine(ReadOnlySpan<byte> path)
    {
        var at = path.IndexOf((byte)'@');
        if (at < 0) return false;
        var authority = path[(at + 1)..];
        var slash = authority.IndexOf((byte)'/');
        if (slash >= 0) authority = authority[..slash];
        var colon = authority.LastIndexOf((byte)':');
        if (colon <= 0 || !int.TryParse(authority[(colon + 1)..], out var p) || p != port) return false;
        var claimedHost = authority[..colon];
        return claimedHost.SequenceEqual(_hostUtf8) || Ascii.EqualsIgnoreCase(claimedHost, _hostUtf8);
    }

    /// <summary>Just enough of protobuf's wire format to walk nested messages without allocating.</summary>
    private ref struct ProtoReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _at;

        /// <summary>The length-delimited fields numbered <paramref name="number"/> of a message, in order.</summary>
        public static FieldEnumerator Fields(ReadOnlySpan<byte> message, int number) => new(message, number);

        /// <summary>Moves to the next length-delimited field (skipping any other) and returns its bytes.</summary>
        public bool NextBytes(out int field, out ReadOnlySpan<byte> bytes)
        {
            while (Next(out field, out var wire))
            {
                if (wire == 2)
                {
                    bytes = Bytes();
                    return true;
                }
                Skip(wire);
            }
            bytes = default;
            return false;
        }

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_at >= _data.Length) return false;
            var tag = Varint();
            field = (int)(tag >> 3);
            wire = (int)(tag & 7);
            return true;
        }

        public long Varint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (_at >= _data.Length) throw Malformed();
                var b = _data[_at++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return (long)value;
            }
            throw Malformed();
        }

        public ReadOnlySpan<byte> Bytes()
        {
            var length = Varint();
            if (length < 0 || length > _data.Length - _at) throw Malformed();
            var bytes = _data.Slice(_at, (int)length);
            _at += (int)length;
            return bytes;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Advance(8); break;
                case 2: Bytes(); break;
                case 5: Advance(4); break;
                default: throw Malformed();
            }
        }

        private void Advance(int count)
        {
            if (count > _data.Length - _at) throw Malformed();
            _at += count;
        }

        private static MemberAuthException Malformed() => new("a remoting frame that is not a well-formed Akka PDU");
    }

    private ref struct FieldEnumerator(ReadOnlySpan<byte> message, int number)
    {
        private ProtoReader _reader = new(message);

        public ReadOnlySpan<byte> Current { get; private set; }

        public readonly FieldEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            while (_reader.NextBytes(out var field, out var bytes))
            {
                if (field != number) continue;
                Current = bytes;
                return true;
            }
            return false;
        }
    }
}
