#!/usr/bin/env python3
"""Records what real ZooKeeper clients send, as seeds for the fuzz corpus (fuzz/README.md).

    fuzz/capture.py LISTEN_PORT SERVER_HOST:PORT OUT_DIR NAME

A TCP proxy: clients connect to 127.0.0.1:LISTEN_PORT, the bytes go on to the server and back unchanged, and
each connection's client-to-server stream is written to OUT_DIR/client/NAME-N. It also splits each stream into
frames: the first frame's payload to OUT_DIR/connect/NAME-N, each distinct later one to OUT_DIR/request/NAME-N-op-OP.
Stops on SIGINT/SIGTERM.
"""
import os
import signal
import socket
import struct
import sys
import threading

listen_port, server, out_dir, name = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
server_host, server_port = server.rsplit(":", 1)
for sub in ("client", "connect", "request"):
    os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
counter = [0]
lock = threading.Lock()


def pump(src, dst, record):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None:
                record.extend(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def save(stream, n):
    if not stream:
        return
    base = f"{name}-{n}"
    with open(os.path.join(out_dir, "client", base), "wb") as f:
        f.write(stream)
    seen, at, first = set(), 0, True
    while at + 4 <= len(stream):
        (length,) = struct.unpack(">i", stream[at:at + 4])
        payload = stream[at + 4:at + 4 + length]
        if length < 0 or len(payload) < length:
            break
        at += 4 + length
        if first:
            with open(os.path.join(out_dir, "connect", base), "wb") as f:
                f.write(payload)
            first = False
            continue
        if len(payload) < 8 or payload in seen:
            continue
        seen.add(payload)
        (op,) = struct.unpack(">i", payload[4:8])
        with open(os.path.join(out_dir, "request", f"{base}-op{op}-{len(seen)}"), "wb") as f:
            f.write(payload)


def handle(client):
    with lock:
        counter[0] += 1
        n = counter[0]
    upstream = socket.create_connection((server_host, int(server_port)))
    stream = bytearray()
    back = threading.Thread(target=pump, args=(upstream, client, None), daemon=True)
    back.start()
    pump(client, upstream, stream)
    back.join(timeout=5)
    client.close()
    upstream.close()
    save(bytes(stream), n)


def main():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", listen_port))
    listener.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        client, _ = listener.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
