#!/usr/bin/env python3
"""Failover of a real kazoo client across a 3-server ensemble.

Usage:
    python3 kazoo_failover.py --hosts H1:P1,H2:P2,H3:P3 --pids P1=PID1,P2=PID2,P3=PID3 [--timeout S]

Connects with the multi-host connect string, creates an ephemeral node and sets a data watch on a persistent
node, then SIGKILLs the server process it is connected to (its client port picks the pid). Passes when the
client reconnects to another member with the SAME session id, the ephemeral node still exists and is owned by
that session (seen from a second client too), and the watch fires when a second client changes the node.
Prints "KILLED <port>" once it has killed a server. Exit 0 on pass, 1 with a message on failure.
"""

import argparse
import faulthandler
import os
import signal
import sys
import threading
import time
import uuid

for _p in ("/usr/lib/python3/dist-packages",):
    if os.path.isdir(_p) and _p not in sys.path:
        sys.path.append(_p)

import logging  # noqa: E402

logging.basicConfig(level=logging.CRITICAL)

from kazoo.client import KazooClient, KazooState  # noqa: E402
from kazoo.recipe.watchers import DataWatch  # noqa: E402
from kazoo.retry import KazooRetry  # noqa: E402


def fail(msg):
    print("FAIL: " + msg, flush=True)
    os._exit(1)


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    fail("timed out after %.0f s waiting for %s" % (timeout, what))


def peer_port(zk):
    sock = zk._connection._socket
    return sock.getpeername()[1] if sock is not None else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--pids", required=True)
    ap.add_argument("--timeout", type=float, default=100)
    args = ap.parse_args()
    pids = {int(k): int(v) for k, v in (p.split("=") for p in args.pids.split(","))}

    def watchdog():
        time.sleep(args.timeout)
        faulthandler.dump_traceback(file=sys.stderr)
        fail("watchdog: no verdict within %.0f s" % args.timeout)
    threading.Thread(target=watchdog, daemon=True).start()

    base = "/kf-" + uuid.uuid4().hex[:8]
    retry = KazooRetry(max_tries=-1, delay=0.1, max_delay=1)
    zk = KazooClient(hosts=args.hosts, timeout=10.0, connection_retry=retry, command_retry=retry)
    states = []
    zk.add_listener(lambda s: states.append(s))
    zk.start(timeout=30)
    session = zk.client_id[0]
    zk.create(base, b"v0")
    eph = zk.create(base + "/eph", b"e", ephemeral=True)
    # kazoo 2.8 drops its one-shot watchers on any connection loss (it calls them with a NONE event and never
    # re-registers them with SetWatches), so a raw get(watch=) cannot survive a failover with this client. Its
    # DataWatch recipe is how kazoo users keep a watch: it re-arms the watch after the reconnect. (Server-side
    # re-registration with SetWatches is what java/ZkFailover.java checks.)
    fired = threading.Event()
    events = []

    expected = [b"v1"]
    seen = []

    def on_data(data, stat, event=None):
        seen.append((data, event))
        if event is not None and event.type != "NONE":
            events.append(event)
            if data == expected[0]:
                fired.set()
    DataWatch(zk, base, on_data)

    port = peer_port(zk)
    if port not in pids:
        fail("connected to port %r, not one of %r" % (port, sorted(pids)))
    os.kill(pids[port], signal.SIGKILL)
    print("KILLED %d session 0x%x" % (port, session), flush=True)

    # The client notices the dead server, reconnects elsewhere and re-attaches its session.
    wait_for(lambda: KazooState.SUSPENDED in states, 30, "the client to notice the SIGKILL (SUSPENDED)")
    wait_for(lambda: zk.connected and peer_port(zk) not in (None, port), 60,
             "the client to reconnect to another server (states %r)" % states)
    if KazooState.LOST in states:
        fail("the session was lost during failover (states %r)" % states)
    if zk.client_id[0] != session:
        fail("session changed from 0x%x to 0x%x" % (session, zk.client_id[0]))
    print("RECONNECTED to port %d, same session 0x%x" % (peer_port(zk), session), flush=True)

    # The server it re-attached to may itself still lose the dead leader and drop its clients (as ZooKeeper's
    # followers do): ConnectionLoss is transient, so retry as a kazoo user does; the session must be the same after.
    stat = zk.retry(zk.exists, eph)
    if zk.client_id[0] != session or KazooState.LOST in states:
        fail("the session changed or was lost after the reconnect (states %r)" % states)
    if stat is None:
        fail("ephemeral %s is gone after the failover" % eph)
    if stat.ephemeralOwner != session:
        fail("ephemeral owner 0x%x, expected 0x%x" % (stat.ephemeralOwner, session))

    other = KazooClient(hosts=args.hosts, timeout=10.0, connection_retry=retry, command_retry=retry)
    other.start(timeout=30)
    other.retry(other.sync, eph)
    ostat = other.retry(other.exists, eph)
    if ostat is None or ostat.ephemeralOwner != session:
        fail("a second client does not see the ephemeral owned by 0x%x: %r" % (session, ostat))
    if fired.is_set():
        fail("the watch fired before the node changed: %r" % events)
    # The watch must fire on the change. One race is the client's, not the server's: when the client reconnects
    # once more (its server had not yet noticed the dead leader, then dropped its clients), DataWatch re-reads the
    # node and may see the new value without an event. Then (and only then) change the node again.
    for attempt in range(1, 4):
        states_before = len(states)
        other.set(base, expected[0])
        if fired.wait(20):
            break
        if len(states) == states_before:
            fail("the data watch set before the failover did not fire after a change (no reconnect meanwhile); "
                 "states %r, callbacks %r" % (states, seen))
        print("reconnected again during attempt %d (states %r): changing the node again" % (attempt, states), flush=True)
        expected[0] = b"v%d" % (attempt + 1)
    else:
        fail("the data watch never fired: states %r, callbacks %r" % (states, seen))
    event = events[-1]
    if event.type != "CHANGED" or event.path != base:
        fail("unexpected watch event %r" % (event,))
    print("WATCH fired: %r" % (event,), flush=True)

    zk.stop()
    zk.close()
    other.sync(base)
    if other.exists(eph) is not None:
        fail("the ephemeral outlived the session's close")
    other.delete(base, recursive=True)
    other.stop()
    other.close()
    print("PASS", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
