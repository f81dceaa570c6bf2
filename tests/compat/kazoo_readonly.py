#!/usr/bin/env python3
"""Read-only mode with a real kazoo client (read_only=True).

Usage:
    python3 kazoo_readonly.py --hosts H1:P1,H2:P2,H3:P3 --path /p --data D --ro-file F --heal-file H [--timeout S]

The caller has cut the LAST host of --hosts off from its quorum (the other members are down, or --hosts names only
that member and a network partition cuts it off from the others) and created --path holding --data before. The
client connects (hosts in the given order), must be told it is connected read-only, read --path and its children,
and get NotReadOnly for create, setData, delete and sync. It then prints "READ-ONLY OK", creates --ro-file and waits
for --heal-file (the caller restores the quorum and creates it), after which it must move by itself to a read-write
member (kazoo probes the hosts with isro, the first one first) and write there.
Exit 0 on pass ("PASS"), 1 with a message on failure.
"""

import argparse
import os
import threading

from kazoo_failover import fail, wait_for  # noqa: E402 (also puts Debian's kazoo on sys.path)

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NotReadOnlyCallError  # noqa: E402
from kazoo.protocol.states import KeeperState  # noqa: E402
from kazoo.retry import KazooRetry  # noqa: E402


def refused(what, call):
    try:
        call()
    except NotReadOnlyCallError:
        print("%s refused with NotReadOnly" % what, flush=True)
        return
    except Exception as e:  # noqa: BLE001
        fail("%s on a read-only server raised %r, not NotReadOnly" % (what, e))
    fail("%s succeeded on a read-only server" % what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--ro-file", required=True)
    ap.add_argument("--heal-file", required=True)
    ap.add_argument("--timeout", type=float, default=100)
    args = ap.parse_args()
    threading.Timer(args.timeout + 30, lambda: fail("overall deadline")).start()

    zk = KazooClient(hosts=args.hosts, read_only=True, randomize_hosts=False, timeout=10,
                     connection_retry=KazooRetry(max_tries=-1, delay=0.2, max_delay=1))
    zk.start(timeout=args.timeout)
    wait_for(lambda: zk.client_state == KeeperState.CONNECTED_RO, 30, "a read-only connection")
    ro_session = zk.client_id[0]
    print("CONNECTED_RO session 0x%x" % ro_session, flush=True)

    data, stat = zk.get(args.path)
    if data != args.data.encode():
        fail("read %r from %s, expected %r" % (data, args.path, args.data))
    children = zk.get_children(args.path)
    print("read %s = %r, children %r, exists %r" % (args.path, data, children, zk.exists(args.path) is not None), flush=True)

    refused("create", lambda: zk.create(args.path + "/ro-write", b"x"))
    refused("set", lambda: zk.set(args.path, b"changed"))
    refused("delete", lambda: zk.delete(args.path))
    refused("sync", lambda: zk.sync(args.path))
    if zk.get(args.path)[0] != args.data.encode():
        fail("the refused writes changed %s" % args.path)
    print("READ-ONLY OK", flush=True)
    open(args.ro_file, "w").close()

    wait_for(lambda: os.path.exists(args.heal_file), args.timeout, "the caller to heal the ensemble")
    wait_for(lambda: zk.client_state == KeeperState.CONNECTED, args.timeout, "a read-write connection after the heal")
    print("CONNECTED read-write, session 0x%x (read-only one was 0x%x)" % (zk.client_id[0], ro_session), flush=True)
    zk.retry(zk.set, args.path, b"written-after-heal")
    if zk.get(args.path)[0] != b"written-after-heal":
        fail("the write after the heal is not visible")
    zk.stop()
    zk.close()
    print("PASS", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
