#!/usr/bin/env python3
"""Real-client compatibility checks using kazoo (the Python ZooKeeper client).

Every check runs unchanged against Apache ZooKeeper 3.8 and against
Coordination.Akka; a check passes only if the server behaves like ZooKeeper.

Usage:
    python3 kazoo_checks.py --hosts 127.0.0.1:PORT --check NAME [--timeout S]
    python3 kazoo_checks.py --list
    python3 kazoo_checks.py --hosts 127.0.0.1:PORT --check all   (every check, in-process)
    python3 kazoo_checks.py --hosts 127.0.0.1:PORT --serve       (the checks named on stdin)

Exit 0 on pass. On failure a message saying what was expected and what was
seen is printed and the exit code is 1. A check that hangs is stopped by a
watchdog (thread stacks dumped to stderr, exit code 1).

Each run works below a unique random path (/kc-<hex>), so checks can run
repeatedly and concurrently against one shared server. Paths are removed at
the end on a best-effort basis.

kazoo 2.8 (Debian bookworm) has no container/TTL create, no add_watch and no
remove_watches; those protocol features are covered by java/ZkChecks.java.
Where kazoo itself normalises a path or an ACL before sending it, the checks
send the raw request with kazoo's protocol objects so the server's own
validation is what gets tested.
"""

import argparse
import faulthandler
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

# What srvr/stat/mntr must report: "standalone", or "follower" when the checks talk to an ensemble's follower.
EXPECTED_MODE = os.environ.get("COMPAT_EXPECT_MODE", "standalone")
import uuid

# Debian installs kazoo for the system interpreter; make it importable when a
# different python3 (pyenv, venv) runs this file.
for _p in ("/usr/lib/python3/dist-packages",):
    if os.path.isdir(_p) and _p not in sys.path:
        sys.path.append(_p)

import logging  # noqa: E402

logging.basicConfig(level=logging.CRITICAL)

from kazoo.client import KazooClient, KazooState  # noqa: E402
from kazoo.exceptions import (  # noqa: E402
    BadArgumentsError, BadVersionError, InvalidACLError, NoAuthError,
    NoChildrenForEphemeralsError, NodeExistsError, NoNodeError, NotEmptyError,
    RolledBackError, RuntimeInconsistency, ConnectionLoss, AuthFailedError,
    ZookeeperError, KazooException)
from kazoo.protocol.serialization import (  # noqa: E402
    Create, Delete, Exists, GetChildren, GetData, SetACL, SetData, Watch)
from kazoo.protocol.states import EventType  # noqa: E402
from kazoo.security import (  # noqa: E402
    ACL, Id, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Permissions, make_digest_acl,
    make_digest_acl_credential)

import kazoo  # noqa: E402
from kazoo.recipe.cache import TreeCache  # noqa: E402

# --------------------------------------------------------------------------
# framework
# --------------------------------------------------------------------------

USER, PASS = "compat-user", "compat-pass"

CHECKS = {}          # name -> function(ctx)
CHECK_ORDER = []


def check(name):
    def deco(fn):
        if name in CHECKS:
            raise RuntimeError("duplicate check " + name)
        CHECKS[name] = fn
        CHECK_ORDER.append(name)
        fn.check_name = name
        return fn
    return deco


class CheckFailed(Exception):
    pass


def fail(msg):
    raise CheckFailed(msg)


def expect(cond, msg):
    if not cond:
        fail(msg)


def expect_eq(actual, expected, what):
    if actual != expected:
        fail("%s: expected %r, saw %r" % (what, expected, actual))


def expect_raises(exc_type, fn, what):
    """Run fn; it must raise exc_type (exactly that class or a subclass)."""
    try:
        result = fn()
    except exc_type as e:
        return e
    except Exception as e:  # wrong exception
        fail("%s: expected %s, saw %s(%s)"
             % (what, exc_type.__name__, type(e).__name__, e))
    fail("%s: expected %s, but the call succeeded and returned %r"
         % (what, exc_type.__name__, result))


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            fail("timed out after %.1fs waiting for: %s" % (timeout, what))
        time.sleep(interval)


class Ctx(object):
    def __init__(self, hosts, check_name):
        self.hosts = hosts
        self.base = "/kc-%s-%s" % (check_name.replace("_", "-"),
                                   uuid.uuid4().hex[:10])
        self.clients = []
        self._admin = None

    def client(self, timeout=10.0, auth=None, start=True):
        c = KazooClient(hosts=self.hosts, timeout=timeout,
                        connection_retry={"max_tries": -1, "delay": 0.1,
                                          "max_delay": 1})
        if start:
            c.start(timeout=10)
        if auth:
            for scheme, cred in auth:
                c.add_auth(scheme, cred)
        self.clients.append(c)
        return c

    @property
    def admin(self):
        if self._admin is None:
            self._admin = self.client()
            self._admin.ensure_path(self.base)
        return self._admin

    def p(self, *parts):
        return "/".join([self.base] + [str(x) for x in parts])

    def close(self):
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass
        # best-effort cleanup, with a fresh client
        try:
            c = KazooClient(hosts=self.hosts, timeout=5,
                            command_retry={"max_tries": 0})
            c.start(timeout=3)
            c.add_auth("digest", "compat-user:compat-pass")
            c.add_auth("digest", "other-user:other-pass")
            try:
                c.delete(self.base, recursive=True)
            except Exception:
                pass
            c.stop()
            c.close()
        except Exception:
            pass


def raw_call(client, request, timeout=10):
    """Send a protocol request exactly as built (kazoo would normalise it)."""
    ar = client.handler.async_result()
    client._call(request, ar)
    return ar.get(timeout=timeout)


class EventLog(object):
    """Records watch events as kazoo's connection thread reads them from the
    socket (before any callback dispatch), plus markers added by the check.
    Raw recording also sees events kazoo itself would drop (for example a
    second firing of a one-shot watch)."""

    def __init__(self, client):
        self.lock = threading.Lock()
        self.items = []
        conn = client._connection
        orig = conn._read_watch_event

        def wrapped(buffer, offset):
            try:
                w, _ = Watch.deserialize(buffer, offset)
                self.add(("event", w.type, client.unchroot(w.path)))
            except Exception as e:  # pragma: no cover
                self.add(("event-unparsable", repr(e)))
            return orig(buffer, offset)
        conn._read_watch_event = wrapped

    def add(self, item):
        with self.lock:
            self.items.append(item)

    def events(self, path=None):
        with self.lock:
            return [i for i in self.items
                    if i[0] == "event" and (path is None or i[2] == path)]

    def snapshot(self):
        with self.lock:
            return list(self.items)


# Raw Watch event type codes on the wire
EV_CREATED, EV_DELETED, EV_CHANGED, EV_CHILD = 1, 2, 3, 4
EV_NAMES = {1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
            4: "NodeChildrenChanged"}


class Collector(object):
    """A kazoo watcher callback that records the WatchedEvents it gets."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait(self, n=1, timeout=10, what="watch event"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.events) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out waiting for %s (have %r)"
                         % (what, self.events))
                self.cond.wait(left)
            return list(self.events)


def four_letter(hosts, cmd, timeout=10):
    host, port = hosts.split(",")[0].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.sendall(cmd.encode() if isinstance(cmd, str) else cmd)
        chunks = []
        while True:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
        return b"".join(chunks).decode("utf-8", "replace")
    finally:
        s.close()


def now_ms():
    return int(time.time() * 1000)


def stat_dict(st):
    return dict(st._asdict())


# --------------------------------------------------------------------------
# basic CRUD and Stat semantics
# --------------------------------------------------------------------------

@check("create_stat")
def check_create_stat(ctx):
    c = ctx.admin
    before = now_ms()
    path, st = c.create(ctx.p("n"), b"hello", include_data=True)
    after = now_ms()
    expect_eq(path, ctx.p("n"), "create2 returned path")
    st2 = c.exists(ctx.p("n"))
    expect_eq(stat_dict(st2), stat_dict(st), "create2 stat vs exists stat")
    expect(st.czxid > 0, "czxid must be > 0, saw %r" % (st,))
    expect_eq(st.mzxid, st.czxid, "new node mzxid == czxid")
    expect_eq(st.pzxid, st.czxid, "new node pzxid == czxid")
    expect_eq(st.version, 0, "new node version")
    expect_eq(st.cversion, 0, "new node cversion")
    expect_eq(st.aversion, 0, "new node aversion")
    expect_eq(st.ephemeralOwner, 0, "persistent node ephemeralOwner")
    expect_eq(st.dataLength, 5, "dataLength")
    expect_eq(st.numChildren, 0, "numChildren")
    expect_eq(st.ctime, st.mtime, "new node ctime == mtime")
    expect(before - 5000 <= st.ctime <= after + 5000,
           "ctime %d should be wall-clock ms near [%d, %d]"
           % (st.ctime, before, after))
    data, st3 = c.get(ctx.p("n"))
    expect_eq(data, b"hello", "get data")
    expect_eq(stat_dict(st3), stat_dict(st), "get stat")
    # plain create (opcode 1) returns only the path
    expect_eq(c.create(ctx.p("m")), ctx.p("m"), "create returned path")
    d, st4 = c.get(ctx.p("m"))
    expect_eq(d, b"", "empty data")
    expect_eq(st4.dataLength, 0, "empty dataLength")
    expect(st4.czxid > st.czxid, "zxids increase: %d then %d"
           % (st.czxid, st4.czxid))
    # binary data round-trips byte for byte
    blob = bytes(range(256)) * 40
    c.set(ctx.p("m"), blob)
    expect_eq(c.get(ctx.p("m"))[0], blob, "binary data round trip")
    # the root node has fixed stat fields
    root = c.exists("/")
    expect_eq((root.czxid, root.ctime, root.ephemeralOwner), (0, 0, 0),
              "root czxid/ctime/ephemeralOwner")


@check("null_data")
def check_null_data(ctx):
    """Null data is not empty data: a node created or set with null reads
    back as None (buffer length -1), with dataLength 0; empty reads as b''.
    Null must stay null through multi, ephemeral and sequential creates."""
    c = ctx.admin
    c.create(ctx.p("null"), None)
    c.create(ctx.p("empty"), b"")
    d, st = c.get(ctx.p("null"))
    expect_eq(d, None, "get of a node created with null data")
    expect_eq(st.dataLength, 0, "dataLength of null data")
    expect_eq(c.get(ctx.p("empty"))[0], b"", "get of a node created with empty data")
    _, st2 = c.create(ctx.p("null2"), None, include_data=True)
    expect_eq(st2.dataLength, 0, "create2 stat dataLength of null data")
    eph = c.create(ctx.p("eph"), None, ephemeral=True)
    expect_eq(c.get(eph)[0], None, "ephemeral node with null data")
    seq = c.create(ctx.p("seq-"), None, sequence=True)
    expect_eq(c.get(seq)[0], None, "sequential node with null data")
    # setData: null replaces data with null, empty with empty
    st = c.set(ctx.p("empty"), None)
    expect_eq((c.get(ctx.p("empty"))[0], st.dataLength, st.version),
              (None, 0, 1), "setData(null) over empty data")
    c.set(ctx.p("null"), b"")
    expect_eq(c.get(ctx.p("null"))[0], b"", "setData(empty) over null data")
    c.set(ctx.p("null"), b"x")
    c.set(ctx.p("null"), None)
    expect_eq(c.get(ctx.p("null"))[0], None, "setData(null) over data")
    # multi: kazoo's transaction refuses None, so the records go in raw
    t = c.transaction()
    t._add(Create(ctx.p("m-null"), None, OPEN_ACL_UNSAFE, 0))
    t._add(Create(ctx.p("m-empty"), b"", OPEN_ACL_UNSAFE, 0))
    t._add(SetData(ctx.p("null"), None, -1))
    res = t.commit()
    expect(isinstance(res[2], type(st)), "multi results: %r" % (res,))
    expect_eq(c.get(ctx.p("m-null"))[0], None, "create(null) in multi")
    expect_eq(c.get(ctx.p("m-empty"))[0], b"", "create(empty) in multi")
    expect_eq(c.get(ctx.p("null"))[0], None, "setData(null) in multi")
    # the built-in nodes hold empty data, not null
    expect_eq(c.get("/")[0], b"", "root data")
    expect_eq(c.get("/zookeeper")[0], b"", "/zookeeper data")
    # a leaf's children and an open node's ACL are empty/filled lists
    expect_eq(c.get_children(ctx.p("m-null")), [], "children of a leaf")
    expect_eq(c.get_acls(ctx.p("m-null"))[0], OPEN_ACL_UNSAFE, "ACL of a null-data node")


@check("set_stat")
def check_set_stat(ctx):
    c = ctx.admin
    _, st0 = c.create(ctx.p("n"), b"a", include_data=True)
    time.sleep(0.01)
    st1 = c.set(ctx.p("n"), b"bbb")
    expect_eq(st1.version, 1, "version after set")
    expect_eq(st1.czxid, st0.czxid, "czxid unchanged by set")
    expect(st1.mzxid > st0.mzxid, "mzxid must grow: %d -> %d"
           % (st0.mzxid, st1.mzxid))
    expect_eq(st1.pzxid, st0.pzxid, "pzxid unchanged by set")
    expect_eq(st1.ctime, st0.ctime, "ctime unchanged by set")
    expect(st1.mtime >= st0.mtime, "mtime must not go back")
    expect_eq(st1.dataLength, 3, "dataLength after set")
    expect_eq((st1.cversion, st1.aversion), (0, 0), "cversion/aversion")
    expect_eq(stat_dict(c.exists(ctx.p("n"))), stat_dict(st1),
              "set's returned stat equals exists stat")
    # same data again still bumps the version
    st2 = c.set(ctx.p("n"), b"bbb")
    expect_eq(st2.version, 2, "version after set of identical data")
    expect(st2.mzxid > st1.mzxid, "mzxid grows on identical set")
    # versioned set
    st3 = c.set(ctx.p("n"), b"c", version=2)
    expect_eq(st3.version, 3, "version after conditional set")
    expect_raises(BadVersionError, lambda: c.set(ctx.p("n"), b"x", version=2),
                  "set with stale version")
    expect_raises(BadVersionError, lambda: c.set(ctx.p("n"), b"x", version=99),
                  "set with future version")
    expect_raises(BadVersionError,
                  lambda: c.set(ctx.p("n"), b"x", version=-2),
                  "set with version -2")
    expect_eq(c.get(ctx.p("n"))[0], b"c", "data unchanged by failed sets")
    expect_eq(c.set(ctx.p("n"), b"d", version=-1).version, 4,
              "version -1 is unconditional")
    expect_raises(NoNodeError, lambda: c.set(ctx.p("missing"), b"x"),
                  "set of missing node")


@check("child_stat")
def check_child_stat(ctx):
    c = ctx.admin
    _, p0 = c.create(ctx.p("parent"), b"pd", include_data=True)
    _, ch = c.create(ctx.p("parent", "a"), b"1", include_data=True)
    p1 = c.exists(ctx.p("parent"))
    expect_eq(p1.cversion, 1, "parent cversion after child create")
    expect_eq(p1.pzxid, ch.czxid, "parent pzxid == child czxid")
    expect_eq(p1.numChildren, 1, "parent numChildren")
    expect_eq(p1.mzxid, p0.mzxid, "parent mzxid unchanged by child create")
    expect_eq(p1.version, p0.version, "parent version unchanged")
    expect_eq(p1.mtime, p0.mtime, "parent mtime unchanged")
    # modifying the child does not touch the parent
    c.set(ctx.p("parent", "a"), b"2")
    expect_eq(stat_dict(c.exists(ctx.p("parent"))), stat_dict(p1),
              "parent stat unchanged by child set")
    c.create(ctx.p("parent", "b"))
    # grandchild does not touch the grandparent
    before_gc = c.exists(ctx.p("parent"))
    c.create(ctx.p("parent", "b", "gc"))
    expect_eq(stat_dict(c.exists(ctx.p("parent"))), stat_dict(before_gc),
              "grandparent stat unchanged by grandchild create")
    c.delete(ctx.p("parent", "b", "gc"))
    # delete bumps cversion and pzxid to the delete's zxid
    c.delete(ctx.p("parent", "a"))
    p2 = c.exists(ctx.p("parent"))
    expect_eq(p2.cversion, 3, "parent cversion after 2 creates + 1 delete")
    expect_eq(p2.numChildren, 1, "numChildren after delete")
    expect(p2.pzxid > p1.pzxid, "pzxid moves on child delete")
    expect_eq(p2.mzxid, p0.mzxid, "parent mzxid unchanged by child delete")
    # the delete's zxid is what pzxid now holds; a following write gets a
    # larger zxid
    st = c.set(ctx.p("parent"), b"x")
    expect(st.mzxid > p2.pzxid, "next write zxid (%d) > pzxid (%d)"
           % (st.mzxid, p2.pzxid))
    expect_eq(st.pzxid, p2.pzxid, "set does not move pzxid")
    # children listing with stat returns the parent's stat
    kids, pst = c.get_children(ctx.p("parent"), include_data=True)
    expect_eq(sorted(kids), ["b"], "children")
    expect_eq(stat_dict(pst), stat_dict(c.exists(ctx.p("parent"))),
              "get_children2 stat is the parent's stat")


@check("set_acls_stat")
def check_set_acls_stat(ctx):
    c = ctx.admin
    _, st0 = c.create(ctx.p("n"), b"d", include_data=True)
    digest = make_digest_acl(USER, PASS, all=True)
    st1 = c.set_acls(ctx.p("n"), READ_ACL_UNSAFE + [digest])
    expect_eq(st1.aversion, 1, "aversion after set_acls")
    expect_eq(st1.version, 0, "version unchanged by set_acls")
    expect_eq(st1.mzxid, st0.mzxid, "mzxid unchanged by set_acls")
    expect_eq(st1.cversion, 0, "cversion unchanged by set_acls")
    expect_eq(st1.mtime, st0.mtime, "mtime unchanged by set_acls")
    expect_eq(stat_dict(c.exists(ctx.p("n"))), stat_dict(st1),
              "set_acls returned stat equals exists stat")
    # a caller with READ but not ADMIN sees digest hashes redacted
    acls, st2 = c.get_acls(ctx.p("n"))
    expect_eq(stat_dict(st2), stat_dict(st1), "get_acls stat")
    expect_eq(sorted((a.perms, a.id.scheme, a.id.id) for a in acls),
              sorted([(Permissions.READ, "world", "anyone"),
                      (Permissions.ALL, "digest", USER + ":x")]),
              "ACL list for a non-ADMIN reader (digest redacted to user:x)")
    # the digest user has ADMIN and sees the full id
    u = ctx.client(auth=[("digest", "%s:%s" % (USER, PASS))])
    acls, _ = u.get_acls(ctx.p("n"))
    expect_eq(sorted((a.perms, a.id.scheme, a.id.id) for a in acls),
              sorted([(Permissions.READ, "world", "anyone"),
                      (Permissions.ALL, "digest", digest.id.id)]),
              "ACL list for an ADMIN caller")
    # versioned set_acls
    c.create(ctx.p("v"))
    expect_raises(BadVersionError,
                  lambda: c.set_acls(ctx.p("v"), OPEN_ACL_UNSAFE, version=3),
                  "set_acls with wrong aversion")
    expect_eq(c.set_acls(ctx.p("v"), OPEN_ACL_UNSAFE, version=0).aversion, 1,
              "set_acls with right aversion")
    expect_eq(c.set_acls(ctx.p("v"), OPEN_ACL_UNSAFE, version=-1).aversion, 2,
              "set_acls unconditional (same ACL still bumps aversion)")
    expect_eq(c.exists(ctx.p("v")).version, 0, "data version untouched")
    expect_raises(NoNodeError,
                  lambda: c.set_acls(ctx.p("missing"), OPEN_ACL_UNSAFE),
                  "set_acls on missing node")
    expect_raises(NoNodeError, lambda: c.get_acls(ctx.p("missing")),
                  "get_acls on missing node")
    # duplicate ACL entries are stored once
    c.create(ctx.p("dup"), acl=OPEN_ACL_UNSAFE + OPEN_ACL_UNSAFE)
    expect_eq(len(c.get_acls(ctx.p("dup"))[0]), 1, "duplicate ACL removed")


@check("delete_semantics")
def check_delete_semantics(ctx):
    c = ctx.admin
    c.create(ctx.p("n"), b"x")
    c.set(ctx.p("n"), b"y")
    expect_raises(BadVersionError, lambda: c.delete(ctx.p("n"), version=0),
                  "delete with stale version")
    expect(c.exists(ctx.p("n")) is not None, "node survives failed delete")
    c.delete(ctx.p("n"), version=1)
    expect(c.exists(ctx.p("n")) is None, "exists after delete must be None")
    expect_raises(NoNodeError, lambda: c.delete(ctx.p("n")),
                  "delete of a deleted node")
    expect_raises(NoNodeError, lambda: c.get(ctx.p("n")), "get deleted")
    # not empty
    c.create(ctx.p("p", "c"), makepath=True)
    expect_raises(NotEmptyError, lambda: c.delete(ctx.p("p")),
                  "delete of node with children")
    # NoNode takes precedence when the node is missing even with a version
    expect_raises(NoNodeError, lambda: c.delete(ctx.p("zz"), version=5),
                  "versioned delete of missing node")
    # re-create after delete gets fresh stat
    c.delete(ctx.p("p", "c"))
    _, st = c.create(ctx.p("p", "c"), include_data=True)
    expect_eq((st.version, st.cversion, st.aversion), (0, 0, 0),
              "re-created node starts with fresh versions")
    c.delete(ctx.p("p"), recursive=True)
    expect(c.exists(ctx.p("p")) is None, "recursive delete")


@check("error_codes")
def check_error_codes(ctx):
    c = ctx.admin
    expect_raises(NoNodeError, lambda: c.get(ctx.p("nope")), "get missing")
    expect_raises(NoNodeError, lambda: c.get_children(ctx.p("nope")),
                  "get_children missing")
    expect(c.exists(ctx.p("nope")) is None, "exists missing returns None")
    expect_raises(NoNodeError, lambda: c.create(ctx.p("nope", "child")),
                  "create without parent")
    c.create(ctx.p("x"))
    expect_raises(NodeExistsError, lambda: c.create(ctx.p("x")),
                  "create existing")
    expect_raises(NodeExistsError, lambda: c.create("/"), "create /")
    expect_raises(NodeExistsError, lambda: c.create("/zookeeper"),
                  "create /zookeeper")
    expect_raises(BadArgumentsError, lambda: c.delete("/"), "delete /")
    expect_raises(BadArgumentsError, lambda: c.delete("/zookeeper"),
                  "delete /zookeeper")
    # the system subtree exists and lists quota and config
    kids = c.get_children("/zookeeper")
    expect("quota" in kids, "/zookeeper children must include quota: %r"
           % (kids,))
    # data too large: 1 MiB + is refused (server closes the connection or
    # returns an error), nothing is applied, and the client recovers.
    c.create(ctx.p("big"), b"small")
    try:
        c.set(ctx.p("big"), b"x" * (2 * 1024 * 1024))
        fail("set of 2 MiB data should fail")
    except CheckFailed:
        raise
    except (ConnectionLoss, ZookeeperError, KazooException):
        pass
    c2 = ctx.client()
    expect_eq(c2.get(ctx.p("big"))[0], b"small",
              "oversize set must not be applied")
    wait_until(lambda: c.connected, 15, "client reconnect after oversize")
    # up to ~1 MB works
    data = b"y" * (1000 * 1000)
    c2.set(ctx.p("big"), data)
    expect_eq(c2.get(ctx.p("big"))[0], data, "1 MB data round trip")


@check("invalid_paths")
def check_invalid_paths(ctx):
    """Server-side path validation, with raw requests (kazoo would clean the
    paths). Expected outcomes are Apache ZooKeeper 3.8's."""
    c = ctx.admin
    c.create(ctx.p("r", "b"), makepath=True)
    r = ctx.p("r")
    rel = r.lstrip("/")   # no leading slash

    def create(p):
        return raw_call(c, Create(p, b"v", OPEN_ACL_UNSAFE, 0))

    # create: the parent must exist before the full path is validated
    cases_create = [
        (r + "/", BadArgumentsError),          # trailing slash
        (r + "/.", BadArgumentsError),         # relative component
        (r + "/..", BadArgumentsError),
        (r + "/b/.", BadArgumentsError),
        (r + "//b", NoNodeError),              # parent "r/" does not exist
        (r + "/./b", NoNodeError),             # parent "r/." does not exist
        (r + "/../b", NoNodeError),
        (rel + "/b", NoNodeError),             # no leading slash, has a slash
        ("nostart", BadArgumentsError),        # no slash at all
        (r + "/x\u0000y", BadArgumentsError),  # NUL
        (r + "/\u0001", BadArgumentsError),    # control character
        (r + "/\ufff5", BadArgumentsError),    # reserved unicode
    ]
    for p, exc in cases_create:
        expect_raises(exc, lambda: create(p), "create %r" % p)
    # set validates paths fully
    for p in (r + "/", r + "//b", rel + "/b", r + "/./b", "nostart"):
        expect_raises(BadArgumentsError,
                      lambda: raw_call(c, SetData(p, b"", -1)),
                      "setData %r" % p)
    # reads just do not find such nodes
    for p in (r + "/", r + "//b", rel + "/b", r + "/./b"):
        expect_raises(NoNodeError, lambda: raw_call(c, GetData(p, None)),
                      "getData %r" % p)
        expect_eq(raw_call(c, Exists(p, None)), None, "exists %r" % p)
        expect_raises(NoNodeError, lambda: raw_call(c, GetChildren(p, None)),
                      "getChildren %r" % p)
    # delete: no slash -> BadArguments, other malformed paths -> NoNode
    expect_raises(BadArgumentsError, lambda: raw_call(c, Delete("x", -1)),
                  "delete 'x'")
    expect_raises(NoNodeError, lambda: raw_call(c, Delete(r + "/", -1)),
                  "delete with trailing slash")
    # non-ASCII but valid unicode names work
    name = r + "/caf\u00e9-\u65e5\u672c"
    expect_eq(create(name), name, "create unicode name")
    expect(name.rsplit("/", 1)[1] in c.get_children(r),
           "unicode child listed")
    # names that merely contain dots, or are called zookeeper, are fine
    for ok in (r + "/.hidden", r + "/a.b", r + "/...", r + "/zookeeper"):
        expect_eq(create(ok), ok, "create %r" % ok)
    # the session still works after all those errors
    expect(c.exists(r) is not None, "session alive after bad paths")


@check("zookeeper_subtree")
def check_zookeeper_subtree(ctx):
    c = ctx.admin
    name = "/zookeeper/kc-%s" % uuid.uuid4().hex[:8]
    try:
        # ZooKeeper 3.8 lets clients create nodes under /zookeeper
        expect_eq(c.create(name, b"x"), name, "create under /zookeeper")
        expect(name.rsplit("/", 1)[1] in c.get_children("/zookeeper"),
               "listed under /zookeeper")
        c.delete(name)
    finally:
        try:
            c.delete(name)
        except NoNodeError:
            pass
    acls, st = c.get_acls("/zookeeper")
    expect(len(acls) >= 1, "/zookeeper has an ACL")
    expect_eq(st.czxid, 0, "/zookeeper czxid")
    expect_eq(st.ephemeralOwner, 0, "/zookeeper ephemeralOwner")
    expect_raises(BadArgumentsError, lambda: c.delete("/zookeeper"),
                  "delete /zookeeper")


# --------------------------------------------------------------------------
# sequential and ephemeral nodes
# --------------------------------------------------------------------------

@check("sequential")
def check_sequential(ctx):
    """The sequential suffix is the parent's internal child-create counter.
    ZooKeeper stores cversion as the number of child creates and reports
    Stat.cversion = 2 * creates - numChildren (= creates + deletes), so the
    suffix is NOT the reported cversion once children have been deleted."""
    c = ctx.admin
    c.create(ctx.p("q"))
    a = c.create(ctx.p("q", "n-"), sequence=True)      # creates: 1
    b = c.create(ctx.p("q", "n-"), sequence=True)      # creates: 2
    expect_eq(a, ctx.p("q", "n-0000000000"), "first sequential name")
    expect_eq(b, ctx.p("q", "n-0000000001"), "second sequential name")
    c.delete(a)
    st = c.exists(ctx.p("q"))
    expect_eq((st.cversion, st.numChildren), (3, 1),
              "reported cversion counts the delete")
    c.create(ctx.p("q", "plain"))                      # creates: 3
    st = c.exists(ctx.p("q"))
    expect_eq(st.cversion, 4, "reported cversion: 3 creates + 1 delete")
    d = c.create(ctx.p("q", "n-"), sequence=True)      # creates: 4
    expect_eq(d, ctx.p("q", "n-0000000003"),
              "sequential suffix counts creates only (not the delete)")
    st = c.exists(ctx.p("q"))
    expect_eq((st.cversion, st.numChildren), (5, 3),
              "cversion = 2*creates - numChildren")
    # different prefixes share the parent's counter
    e = c.create(ctx.p("q", "other-"), sequence=True)  # creates: 5
    expect_eq(e, ctx.p("q", "other-0000000004"), "shared counter")
    # a sequential name may be just the number (path ends with '/')
    f = raw_call(c, Create(ctx.p("q") + "/", b"", OPEN_ACL_UNSAFE, 2))
    expect_eq(f, ctx.p("q", "0000000005"), "sequential with trailing slash")
    # creates: 6. A sequential create may collide with an existing name;
    # the failed create does not advance the counter.
    c.create(ctx.p("q", "x-0000000007"))               # creates: 7
    expect_raises(NodeExistsError,
                  lambda: c.create(ctx.p("q", "x-"), sequence=True),
                  "sequential create colliding with existing name")
    expect_raises(NodeExistsError,
                  lambda: c.create(ctx.p("q", "x-"), sequence=True),
                  "failed sequential create did not advance the counter")
    c.create(ctx.p("q", "filler"))                     # creates: 8
    g = c.create(ctx.p("q", "x-"), sequence=True)      # creates: 9
    expect_eq(g, ctx.p("q", "x-0000000008"), "counter after collision")
    # deleting every child keeps the counter
    for kid in c.get_children(ctx.p("q")):
        c.delete(ctx.p("q", kid))
    st = c.exists(ctx.p("q"))
    expect_eq((st.cversion, st.numChildren), (18, 0),
              "cversion after 9 creates and 9 deletes")
    # ephemeral sequential
    h, hst = c.create(ctx.p("q", "e-"), ephemeral=True, sequence=True,
                      include_data=True)
    expect_eq(h, ctx.p("q", "e-0000000009"), "ephemeral sequential name")
    expect_eq(hst.ephemeralOwner, c.client_id[0], "ephemeral owner")
    # numbers are 10 digits; a fresh parent starts at 0 again
    c.create(ctx.p("q2"))
    expect_eq(c.create(ctx.p("q2", "z"), sequence=True),
              ctx.p("q2", "z0000000000"), "fresh parent starts at 0")


@check("sequential_concurrent")
def check_sequential_concurrent(ctx):
    """Several sessions race sequential creates; names are unique, dense and
    ordered by czxid."""
    ctx.admin.create(ctx.p("race"))
    clients = [ctx.client() for _ in range(4)]
    results = []
    lock = threading.Lock()
    errors = []

    def worker(cl):
        try:
            for _ in range(15):
                path, st = cl.create(ctx.p("race", "s-"), sequence=True,
                                     include_data=True)
                with lock:
                    results.append((path, st.czxid))
        except Exception as e:
            errors.append(repr(e))
    ts = [threading.Thread(target=worker, args=(cl,)) for cl in clients]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    expect(not errors, "errors in workers: %r" % errors)
    names = sorted(p for p, _ in results)
    expect_eq(len(set(names)), 60, "unique sequential names")
    expect_eq(names, [ctx.p("race", "s-%010d" % i) for i in range(60)],
              "dense sequence 0..59")
    by_zxid = [p for p, _ in sorted(results, key=lambda x: x[1])]
    expect_eq(by_zxid, names, "sequence numbers ordered like czxids")


@check("ephemeral")
def check_ephemeral(ctx):
    c = ctx.client()
    sid = c.client_id[0]
    _, st = c.create(ctx.p("e"), b"x", ephemeral=True, makepath=True,
                     include_data=True)
    expect_eq(st.ephemeralOwner, sid, "ephemeralOwner == session id")
    expect_raises(NoChildrenForEphemeralsError,
                  lambda: c.create(ctx.p("e", "child")),
                  "child of ephemeral")
    expect_raises(NoChildrenForEphemeralsError,
                  lambda: c.create(ctx.p("e", "child"), ephemeral=True),
                  "ephemeral child of ephemeral")
    expect_raises(NoChildrenForEphemeralsError,
                  lambda: c.create(ctx.p("e", "s-"), sequence=True),
                  "sequential child of ephemeral")
    # another session sees the owner too
    other = ctx.admin
    expect_eq(other.exists(ctx.p("e")).ephemeralOwner, sid,
              "owner seen by another session")
    # another session can delete (and set) someone else's ephemeral
    other.set(ctx.p("e"), b"y")
    c.create(ctx.p("e2"), ephemeral=True)
    other.delete(ctx.p("e2"))
    expect(c.exists(ctx.p("e2")) is None, "ephemeral deleted by other session")
    # an ephemeral re-created by another session belongs to that session
    other.create(ctx.p("e2"), ephemeral=True)
    expect_eq(c.exists(ctx.p("e2")).ephemeralOwner, other.client_id[0],
              "owner of re-created ephemeral")


@check("ephemeral_cleanup_on_close")
def check_ephemeral_cleanup_on_close(ctx):
    watcher = ctx.admin
    c = ctx.client()
    c.create(ctx.p("e1"), ephemeral=True)
    c.create(ctx.p("e2"), b"d", ephemeral=True)
    c.create(ctx.p("keep"), b"persistent")
    coll1, coll2, kids = Collector(), Collector(), Collector()
    expect(watcher.exists(ctx.p("e1"), watch=coll1) is not None, "e1 exists")
    watcher.get(ctx.p("e2"), watch=coll2)
    watcher.get_children(ctx.base, watch=kids)
    pst = watcher.exists(ctx.base)
    c.stop()      # sends closeSession and waits for the reply
    c.close()
    # closeSession is a transaction: after it is acknowledged, the
    # ephemerals are gone for everyone (sync first to be exact)
    watcher.sync(ctx.base)
    expect(watcher.exists(ctx.p("e1")) is None, "e1 gone after close")
    expect(watcher.exists(ctx.p("e2")) is None, "e2 gone after close")
    expect(watcher.exists(ctx.p("keep")) is not None, "persistent node kept")
    ev1 = coll1.wait(1, what="exists watch NodeDeleted for e1")
    ev2 = coll2.wait(1, what="data watch NodeDeleted for e2")
    expect_eq((ev1[0].type, ev1[0].path), (EventType.DELETED, ctx.p("e1")),
              "e1 event")
    expect_eq((ev2[0].type, ev2[0].path), (EventType.DELETED, ctx.p("e2")),
              "e2 event")
    kev = kids.wait(1, what="child watch on parent")
    expect_eq((kev[0].type, kev[0].path), (EventType.CHILD, ctx.base),
              "parent child event")
    pst2 = watcher.exists(ctx.base)
    expect_eq(pst2.cversion, pst.cversion + 2,
              "parent cversion bumped once per removed ephemeral")
    expect_eq(pst2.numChildren, pst.numChildren - 2, "parent numChildren")


def _child_ephemeral_main(hosts, path, timeout_s):
    """Runs in a child process for session_expiry: create ephemerals, report
    the session id, then sleep until killed."""
    c = KazooClient(hosts=hosts, timeout=timeout_s)
    c.start(timeout=15)
    c.create(path + "/e1", b"x", ephemeral=True)
    c.create(path + "/e2", b"x", ephemeral=True)
    print("READY %d %d" % (c.client_id[0], c._session_timeout), flush=True)
    time.sleep(120)


@check("session_expiry")
def check_session_expiry(ctx):
    w = ctx.admin
    timeout_s = 4.0
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--hosts", ctx.hosts,
         "--child-ephemeral", ctx.base, "--child-timeout", str(timeout_s)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("READY") or not line:
                break
        if not line.startswith("READY"):
            proc.kill()
            fail("child did not start: stdout=%r stderr=%r"
                 % (line, proc.stderr.read()[-2000:]))
        _, sid, negotiated = line.split()
        sid, negotiated = int(sid), int(negotiated)
        expect_eq(negotiated, int(timeout_s * 1000), "negotiated timeout ms")
        st = w.exists(ctx.p("e1"))
        expect(st is not None and st.ephemeralOwner == sid,
               "child's ephemeral exists with its owner: %r" % (st,))
        coll = Collector()
        w.exists(ctx.p("e1"), watch=coll)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        # not expired early: the session lives for about its timeout
        time.sleep(1.0)
        expect(w.exists(ctx.p("e1")) is not None,
               "ephemeral vanished within 1 s of the client dying; the "
               "session must live until its %ss timeout" % timeout_s)
        ev = coll.wait(1, timeout=timeout_s + 6,
                       what="NodeDeleted after session expiry")
        gone_after = time.monotonic() - killed
        expect_eq((ev[0].type, ev[0].path), (EventType.DELETED, ctx.p("e1")),
                  "expiry event")
        # the whole session's ephemerals go in one transaction: once the
        # event for e1 is here, e2 is gone too
        expect(w.exists(ctx.p("e2")) is None,
               "e2 must be gone together with e1 (atomic session close)")
        expect(gone_after <= timeout_s + 6,
               "expired after %.1fs, limit %.1fs" % (gone_after,
                                                    timeout_s + 6))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# --------------------------------------------------------------------------
# children
# --------------------------------------------------------------------------

@check("get_children")
def check_get_children(ctx):
    c = ctx.admin
    c.create(ctx.p("p"))
    expect_eq(c.get_children(ctx.p("p")), [], "empty children")
    names = ["b", "a", "c-1", "zz", "0"]
    for n in names:
        c.create(ctx.p("p", n))
    kids = c.get_children(ctx.p("p"))
    expect_eq(sorted(kids), sorted(names), "children names (any order)")
    kids2, st = c.get_children(ctx.p("p"), include_data=True)
    expect_eq(sorted(kids2), sorted(names), "children2 names")
    expect_eq(st.numChildren, 5, "children2 stat numChildren")
    expect_eq(st.cversion, 5, "children2 stat cversion")
    # children only, not grandchildren
    c.create(ctx.p("p", "a", "deep"))
    expect_eq(sorted(c.get_children(ctx.p("p"))), sorted(names),
              "grandchildren not listed")
    # many children
    c.create(ctx.p("many"))
    t = c.transaction()
    for i in range(200):
        t.create(ctx.p("many", "c%03d" % i))
    res = t.commit()
    expect(all(isinstance(r, str) for r in res), "bulk create: %r" % res[:3])
    expect_eq(len(c.get_children(ctx.p("many"))), 200, "200 children")
    expect_eq(c.exists(ctx.p("many")).numChildren, 200, "numChildren 200")


# --------------------------------------------------------------------------
# watches
# --------------------------------------------------------------------------

@check("data_watch_once")
def check_data_watch_once(ctx):
    w = ctx.client()
    log = EventLog(w)
    ctx.admin.create(ctx.p("n"), b"0")
    coll = Collector()
    w.get(ctx.p("n"), watch=coll)
    ctx.admin.set(ctx.p("n"), b"1")
    ctx.admin.set(ctx.p("n"), b"2")
    ev = coll.wait(1, what="NodeDataChanged")
    expect_eq((ev[0].type, ev[0].path), (EventType.CHANGED, ctx.p("n")),
              "data watch event")
    # a read on w after the second set: any (wrong) second event would have
    # been delivered before this response
    w.sync(ctx.p("n"))
    expect_eq(w.get(ctx.p("n"))[0], b"2", "data after sets")
    evs = log.events(ctx.p("n"))
    expect_eq([e[1] for e in evs], [EV_CHANGED],
              "raw events for a one-shot data watch (must fire once)")
    # registering twice for the same path yields one event
    coll2 = Collector()
    w.get(ctx.p("n"), watch=coll2)
    w.get(ctx.p("n"), watch=coll2)
    w.exists(ctx.p("n"), watch=coll2)
    ctx.admin.set(ctx.p("n"), b"3")
    coll2.wait(1)
    w.sync(ctx.p("n"))
    w.get(ctx.p("n"))
    expect_eq([e[1] for e in log.events(ctx.p("n"))], [EV_CHANGED, EV_CHANGED],
              "get+get+exists watch on one path fires one event")
    # delete fires NodeDeleted on a data watch
    coll3 = Collector()
    w.get(ctx.p("n"), watch=coll3)
    ctx.admin.delete(ctx.p("n"))
    ev3 = coll3.wait(1)
    expect_eq(ev3[0].type, EventType.DELETED, "data watch on delete")


@check("exists_watch")
def check_exists_watch(ctx):
    w = ctx.client()
    log = EventLog(w)
    c = ctx.admin
    coll = Collector()
    expect(w.exists(ctx.p("n"), watch=coll) is None, "missing node")
    c.create(ctx.p("n"), b"a")
    ev = coll.wait(1, what="NodeCreated")
    expect_eq((ev[0].type, ev[0].path), (EventType.CREATED, ctx.p("n")),
              "exists watch on missing node fires NodeCreated")
    c.set(ctx.p("n"), b"b")
    w.sync(ctx.p("n"))
    w.get(ctx.p("n"))
    expect_eq([e[1] for e in log.events(ctx.p("n"))], [EV_CREATED],
              "exists watch fires once")
    # exists watch on existing node: NodeDataChanged, then NodeDeleted
    coll2 = Collector()
    w.exists(ctx.p("n"), watch=coll2)
    c.set(ctx.p("n"), b"c")
    coll2.wait(1)
    coll3 = Collector()
    w.exists(ctx.p("n"), watch=coll3)
    c.delete(ctx.p("n"))
    coll3.wait(1)
    expect_eq([coll2.events[0].type, coll3.events[0].type],
              [EventType.CHANGED, EventType.DELETED], "event types")
    # a child create does not trigger an exists watch on the parent
    c.create(ctx.p("p"))
    coll4 = Collector()
    w.exists(ctx.p("p"), watch=coll4)
    c.create(ctx.p("p", "kid"))
    w.sync(ctx.p("p"))
    w.get(ctx.p("p"))
    expect_eq(coll4.events, [], "exists watch must not fire on child create")
    expect_eq(log.events(ctx.p("p")), [], "no raw events for parent")


@check("child_watch")
def check_child_watch(ctx):
    w = ctx.client()
    log = EventLog(w)
    c = ctx.admin
    c.create(ctx.p("p"))
    coll = Collector()
    w.get_children(ctx.p("p"), watch=coll)
    c.create(ctx.p("p", "a"))
    ev = coll.wait(1)
    expect_eq((ev[0].type, ev[0].path), (EventType.CHILD, ctx.p("p")),
              "child watch event on create")
    c.create(ctx.p("p", "b"))
    c.set(ctx.p("p"), b"parent data")
    w.sync(ctx.p("p"))
    w.get(ctx.p("p"))
    expect_eq([e[1] for e in log.events(ctx.p("p"))], [EV_CHILD],
              "child watch fires once and not for parent data change")
    # child data change does not fire the parent's child watch
    coll2 = Collector()
    w.get_children(ctx.p("p"), watch=coll2)
    c.set(ctx.p("p", "a"), b"x")
    c.create(ctx.p("p", "a", "grandchild"))
    w.sync(ctx.p("p"))
    w.get(ctx.p("p"))
    expect_eq(coll2.events, [],
              "child watch must not fire for child data or grandchild")
    # deleting a child fires it
    c.delete(ctx.p("p", "b"))
    ev2 = coll2.wait(1)
    expect_eq(ev2[0].type, EventType.CHILD, "child watch on child delete")
    # deleting the watched node itself: NodeDeleted to the child watcher
    c.create(ctx.p("q"))
    coll3 = Collector()
    w.get_children(ctx.p("q"), watch=coll3)
    c.delete(ctx.p("q"))
    ev3 = coll3.wait(1)
    expect_eq((ev3[0].type, ev3[0].path), (EventType.DELETED, ctx.p("q")),
              "child watch on deleted node gets NodeDeleted")
    # get_children2 (include_data) also sets a watch
    coll4 = Collector()
    w.get_children(ctx.p("p"), watch=coll4, include_data=True)
    c.create(ctx.p("p", "z"), ephemeral=True)
    expect_eq(coll4.wait(1)[0].type, EventType.CHILD,
              "getChildren2 watch")


@check("watch_multiple_types_on_delete")
def check_watch_multiple_types_on_delete(ctx):
    """Data, exists and child watches on one node plus a child watch on its
    parent: one delete fires each exactly once."""
    w = ctx.client()
    log = EventLog(w)
    c = ctx.admin
    c.create(ctx.p("p", "n"), makepath=True)
    d, e, k, pk = Collector(), Collector(), Collector(), Collector()
    w.get(ctx.p("p", "n"), watch=d)
    w.exists(ctx.p("p", "n"), watch=e)
    w.get_children(ctx.p("p", "n"), watch=k)
    w.get_children(ctx.p("p"), watch=pk)
    c.delete(ctx.p("p", "n"))
    for coll, what in ((d, "data"), (e, "exists"), (k, "child")):
        ev = coll.wait(1, what=what + " watch on delete")
        expect_eq((ev[0].type, ev[0].path),
                  (EventType.DELETED, ctx.p("p", "n")), what + " watch event")
    pev = pk.wait(1, what="parent child watch")
    expect_eq((pev[0].type, pev[0].path), (EventType.CHILD, ctx.p("p")),
              "parent child watch event")
    w.sync(ctx.p("p"))
    w.exists(ctx.p("p"))
    raw = [(x[1], x[2]) for x in log.events()]
    expect_eq(sorted(raw), sorted([(EV_DELETED, ctx.p("p", "n")),
                                   (EV_CHILD, ctx.p("p"))]),
              "raw events: one NodeDeleted for the node, one "
              "NodeChildrenChanged for the parent")


@check("watch_before_response")
def check_watch_before_response(ctx):
    """Invariant 4: a client sees the watch event before any response that
    shows the change. Session A watches n; session B writes; A polls the
    data; the event must be recorded (read off the socket) before the read
    that returns the new value."""
    a = ctx.client()
    b = ctx.admin
    log = EventLog(a)
    b.create(ctx.p("n"), b"0")
    for i in range(1, 31):
        a.get(ctx.p("n"), watch=lambda ev: None)
        val = ("%d" % i).encode()
        done = threading.Event()

        def writer():
            b.set(ctx.p("n"), val)
            done.set()
        t = threading.Thread(target=writer)
        t.start()
        deadline = time.monotonic() + 10
        while True:
            data, _ = a.get(ctx.p("n"))
            if data == val:
                log.add(("saw", i))
                break
            if time.monotonic() > deadline:
                fail("iteration %d: A never saw the new value" % i)
        t.join(10)
        items = log.snapshot()
        saw_index = items.index(("saw", i))
        events = [j for j, it in enumerate(items)
                  if it[0] == "event" and it[1] == EV_CHANGED]
        expect(len(events) == i,
               "iteration %d: expected %d NodeDataChanged events so far, "
               "log=%r" % (i, i, items[-6:]))
        expect(events[-1] < saw_index,
               "iteration %d: the get response showing the change arrived "
               "before the watch event; log tail=%r" % (i, items[-6:]))
    # the same for child watches and a pipelined read of the creator's
    # own change
    for i in range(10):
        a.get_children(ctx.base, watch=lambda ev: None)
        b.create(ctx.p("k%d" % i))
        while ("k%d" % i) not in a.get_children(ctx.base):
            pass
        log.add(("sawchild", i))
        items = log.snapshot()
        si = items.index(("sawchild", i))
        ev = [j for j, it in enumerate(items)
              if it[0] == "event" and it[1] == EV_CHILD]
        expect(len(ev) == i + 1 and ev[-1] < si,
               "child iteration %d: event must precede the response; tail=%r"
               % (i, items[-4:]))


@check("watch_event_order")
def check_watch_event_order(ctx):
    """Events for one session arrive in zxid order: watches on many nodes,
    a multi-step sequence of writes from another session, events in the
    order of the writes."""
    w = ctx.client()
    log = EventLog(w)
    c = ctx.admin
    paths = [ctx.p("n%02d" % i) for i in range(20)]
    for p in paths:
        c.create(p)
    for p in paths:
        w.get(p, watch=lambda ev: None)
    order = list(reversed(paths[::2])) + paths[1::2]
    for p in order:
        c.set(p, b"x")
    w.sync(ctx.base)
    deadline = time.monotonic() + 10
    while len(log.events()) < len(paths) and time.monotonic() < deadline:
        time.sleep(0.02)
    got = [e[2] for e in log.events() if e[1] == EV_CHANGED]
    expect_eq(got, order, "events in write (zxid) order")


@check("read_your_writes_pipelined")
def check_read_your_writes_pipelined(ctx):
    """Invariant 3: pipelined async requests on one session are answered in
    order, and a read issued after a write sees it."""
    c = ctx.admin
    c.create(ctx.p("n"), b"0")
    c.create(ctx.p("s"))
    asyncs = []
    for i in range(1, 101):
        asyncs.append(("set", i, c.set_async(ctx.p("n"), str(i).encode())))
        asyncs.append(("get", i, c.get_async(ctx.p("n"))))
        asyncs.append(("seq", i, c.create_async(ctx.p("s", "x-"),
                                                sequence=True)))
    seqs = []
    for kind, i, ar in asyncs:
        r = ar.get(timeout=20)
        if kind == "set":
            expect_eq(r.version, i, "version after pipelined set %d" % i)
        elif kind == "get":
            expect_eq(r[0], str(i).encode(), "read after pipelined set %d" % i)
            expect_eq(r[1].version, i, "stat version in read %d" % i)
        else:
            seqs.append(r)
    expect_eq(seqs, [ctx.p("s", "x-%010d" % i) for i in range(100)],
              "pipelined sequential creates numbered in request order")


# --------------------------------------------------------------------------
# multi
# --------------------------------------------------------------------------

@check("multi_commit")
def check_multi_commit(ctx):
    c = ctx.admin
    c.create(ctx.p("existing"), b"old")
    c.create(ctx.p("todelete"))
    t = c.transaction()
    t.create(ctx.p("a"), b"A")
    t.create(ctx.p("a", "child"), b"C")
    t.set_data(ctx.p("existing"), b"new")
    t.check(ctx.p("existing"), 1)
    t.delete(ctx.p("todelete"))
    t.create(ctx.p("seq-"), sequence=True)
    res = t.commit()
    expect_eq(len(res), 6, "result count")
    expect_eq(res[0], ctx.p("a"), "create result")
    expect_eq(res[1], ctx.p("a", "child"), "nested create result")
    expect(hasattr(res[2], "mzxid") and res[2].version == 1,
           "setData result is a Stat with version 1: %r" % (res[2],))
    expect_eq(res[3], True, "check result")
    expect_eq(res[4], True, "delete result")
    expect(res[5].startswith(ctx.p("seq-")) and len(res[5]) == len(
        ctx.p("seq-")) + 10, "sequential create in multi: %r" % res[5])
    sa = c.exists(ctx.p("a"))
    sc = c.exists(ctx.p("a", "child"))
    se = c.exists(ctx.p("existing"))
    # the whole multi is a single transaction: one zxid
    expect_eq(sc.czxid, sa.czxid, "ops of one multi share a zxid (czxid)")
    expect_eq(se.mzxid, sa.czxid, "ops of one multi share a zxid (mzxid)")
    expect_eq(res[2].mzxid, sa.czxid, "setData result stat mzxid")
    expect(c.exists(ctx.p("todelete")) is None, "deleted in multi")
    expect_eq(c.get(ctx.p("existing"))[0], b"new", "set in multi")
    # empty multi
    expect_eq(c.transaction().commit(), [], "empty multi")


@check("multi_rollback")
def check_multi_rollback(ctx):
    c = ctx.admin
    c.create(ctx.p("exists"), b"v")
    before = c.exists(ctx.base)
    t = c.transaction()
    t.create(ctx.p("a"))
    t.set_data(ctx.p("exists"), b"changed")
    t.create(ctx.p("exists"))          # fails: NodeExists
    t.create(ctx.p("c"))
    res = t.commit()
    expect_eq([type(r).__name__ for r in res],
              ["RolledBackError", "RolledBackError", "NodeExistsError",
               "RuntimeInconsistency"],
              "per-op results of a failed multi (ZK: OK->rolled back, "
              "failing op's code, then RUNTIMEINCONSISTENCY)")
    expect(c.exists(ctx.p("a")) is None, "earlier create rolled back")
    expect(c.exists(ctx.p("c")) is None, "later create not applied")
    d, st = c.get(ctx.p("exists"))
    expect_eq((d, st.version), (b"v", 0), "set rolled back")
    expect_eq(stat_dict(c.exists(ctx.base)), stat_dict(before),
              "parent stat untouched by failed multi")
    # a failed multi consumes no sequence numbers
    t = c.transaction()
    t.create(ctx.p("s-"), sequence=True)
    t.delete(ctx.p("nonexistent"))
    res = t.commit()
    expect_eq([type(r).__name__ for r in res],
              ["RolledBackError", "NoNodeError"], "seq + failing delete")
    # one child ("exists") was ever created under base: the next number is 1
    expect_eq(c.create(ctx.p("s-"), sequence=True), ctx.p("s-0000000001"),
              "sequence counter not advanced by a failed multi")
    # ops inside a multi see earlier ops of the same multi
    t = c.transaction()
    t.create(ctx.p("x"))
    t.create(ctx.p("x", "y"))
    t.delete(ctx.p("x", "y"))
    t.delete(ctx.p("x"))
    res = t.commit()
    expect_eq(res, [ctx.p("x"), ctx.p("x", "y"), True, True],
              "create/delete chain in one multi")
    expect(c.exists(ctx.p("x")) is None, "chain leaves nothing")
    # failing op first
    t = c.transaction()
    t.delete(ctx.p("exists"), version=7)
    t.create(ctx.p("later"))
    res = t.commit()
    expect_eq([type(r).__name__ for r in res],
              ["BadVersionError", "RuntimeInconsistency"],
              "first op fails")


@check("multi_check_version")
def check_multi_check_version(ctx):
    c = ctx.admin
    c.create(ctx.p("v"), b"0")
    c.set(ctx.p("v"), b"1")       # version 1
    t = c.transaction()
    t.check(ctx.p("v"), 0)
    t.create(ctx.p("guarded"))
    res = t.commit()
    expect_eq([type(r).__name__ for r in res],
              ["BadVersionError", "RuntimeInconsistency"],
              "failed version check")
    expect(c.exists(ctx.p("guarded")) is None, "guarded create not applied")
    t = c.transaction()
    t.check(ctx.p("v"), 1)
    t.create(ctx.p("guarded"))
    t.set_data(ctx.p("v"), b"2", version=1)
    res = t.commit()
    expect_eq(res[0], True, "check ok")
    expect_eq(res[1], ctx.p("guarded"), "guarded create")
    expect_eq(res[2].version, 2, "versioned set in multi")
    # check on a missing node
    t = c.transaction()
    t.check(ctx.p("missing"), 0)
    res = t.commit()
    expect_eq([type(r).__name__ for r in res], ["NoNodeError"],
              "check on missing node")
    # check, then set, then a check with the pre-set version fails
    t = c.transaction()
    t.set_data(ctx.p("v"), b"3")
    t.check(ctx.p("v"), 2)
    res = t.commit()
    expect_eq([type(r).__name__ for r in res],
              ["RolledBackError", "BadVersionError"],
              "check sees the version produced earlier in the same multi")
    expect_eq(c.get(ctx.p("v"))[1].version, 2, "rolled back")
    # error inside multi for a child of an ephemeral, and a bad ACL
    c.create(ctx.p("eph"), ephemeral=True)
    t = c.transaction()
    t.create(ctx.p("eph", "kid"))
    res = t.commit()
    expect_eq([type(r).__name__ for r in res],
              ["NoChildrenForEphemeralsError"], "ephemeral parent in multi")


@check("multi_watches")
def check_multi_watches(ctx):
    """A committed multi fires the watches of every op; a failed one fires
    none."""
    w = ctx.client()
    log = EventLog(w)
    c = ctx.admin
    c.create(ctx.p("a"), b"")
    c.create(ctx.p("b"), b"")
    for p in ("a", "b"):
        w.get(ctx.p(p), watch=lambda ev: None)
    w.exists(ctx.p("c"), watch=lambda ev: None)
    t = c.transaction()
    t.set_data(ctx.p("a"), b"1")
    t.create(ctx.p("c"))
    t.create(ctx.p("a"))      # fails
    t.commit()
    w.sync(ctx.base)
    w.get(ctx.p("a"))
    expect_eq(log.events(), [], "failed multi fires no watches")
    t = c.transaction()
    t.set_data(ctx.p("a"), b"1")
    t.create(ctx.p("c"))
    t.delete(ctx.p("b"))
    t.commit()
    w.sync(ctx.base)
    w.get(ctx.p("a"))
    got = sorted((e[1], e[2]) for e in log.events())
    expect_eq(got, sorted([(EV_CHANGED, ctx.p("a")),
                           (EV_CREATED, ctx.p("c")),
                           (EV_DELETED, ctx.p("b"))]),
              "events of a committed multi")


# --------------------------------------------------------------------------
# ACLs and auth
# --------------------------------------------------------------------------

@check("acl_digest")
def check_acl_digest(ctx):
    owner = ctx.client(auth=[("digest", "%s:%s" % (USER, PASS))])
    owner.ensure_path(ctx.base)
    acl = make_digest_acl(USER, PASS, all=True)
    owner.create(ctx.p("secret"), b"s3cret", acl=[acl])
    acls, _ = owner.get_acls(ctx.p("secret"))
    expect_eq([(a.perms, a.id.scheme, a.id.id) for a in acls],
              [(Permissions.ALL, "digest",
                make_digest_acl_credential(USER, PASS))],
              "digest ACL stored as user:base64(sha1(user:pass))")
    anon = ctx.client()
    expect_raises(NoAuthError, lambda: anon.get(ctx.p("secret")),
                  "get without auth")
    expect_raises(NoAuthError, lambda: anon.set(ctx.p("secret"), b"x"),
                  "set without auth")
    expect_raises(NoAuthError, lambda: anon.create(ctx.p("secret", "c")),
                  "create child without auth")
    expect_raises(NoAuthError, lambda: anon.get_children(ctx.p("secret")),
                  "get_children without auth")
    expect_raises(NoAuthError,
                  lambda: anon.set_acls(ctx.p("secret"), OPEN_ACL_UNSAFE),
                  "set_acls without auth")
    # exists: READ on an existing node since 3.8.4 and 3.9.2 (ZOOKEEPER-2590),
    # no permission before; the server's reported version says which rule
    # it follows. get_acls needs READ or ADMIN.
    ver = anon.server_version()
    if ver >= (3, 9, 2) or (3, 8, 4) <= ver < (3, 9):
        expect_raises(NoAuthError, lambda: anon.exists(ctx.p("secret")),
                      "exists without READ (%r)" % (ver,))
    else:
        expect(anon.exists(ctx.p("secret")) is not None,
               "exists needs no perms (%r)" % (ver,))
    expect_raises(NoAuthError, lambda: anon.get_acls(ctx.p("secret")),
                  "get_acls without READ or ADMIN")
    wrong = ctx.client(auth=[("digest", "%s:wrong" % USER)])
    expect_raises(NoAuthError, lambda: wrong.get(ctx.p("secret")),
                  "get with wrong password")
    anon.add_auth("digest", "%s:%s" % (USER, PASS))
    expect_eq(anon.get(ctx.p("secret"))[0], b"s3cret", "get after add_auth")
    # multiple identities: the second one matches
    multi = ctx.client(auth=[("digest", "other-user:other-pass"),
                             ("digest", "%s:%s" % (USER, PASS))])
    expect_eq(multi.get(ctx.p("secret"))[0], b"s3cret",
              "any matching identity grants access")
    # unknown auth scheme: AuthFailed
    bad = ctx.client()
    expect_raises(AuthFailedError,
                  lambda: bad.add_auth("nosuchscheme", "x"),
                  "add_auth with unknown scheme")


@check("acl_permissions")
def check_acl_permissions(ctx):
    """Each permission bit governs exactly its operations."""
    c = ctx.admin
    anon = ctx.client()
    P = Permissions

    def mk(name, perms):
        c.create(ctx.p(name), b"d", acl=[ACL(perms, Id("world", "anyone"))])
        return ctx.p(name)
    # world read-only
    ro = mk("ro", P.READ)
    expect_eq(anon.get(ro)[0], b"d", "READ allows get")
    expect_eq(anon.get_children(ro), [], "READ allows get_children")
    expect_raises(NoAuthError, lambda: anon.set(ro, b"x"), "set on READ-only")
    expect_raises(NoAuthError, lambda: anon.create(ro + "/c"),
                  "create under READ-only")
    expect_raises(NoAuthError, lambda: anon.set_acls(ro, OPEN_ACL_UNSAFE),
                  "set_acls on READ-only")
    # write only
    wo = mk("wo", P.WRITE)
    expect_raises(NoAuthError, lambda: anon.get(wo), "get on WRITE-only")
    expect_eq(anon.set(wo, b"w").version, 1, "WRITE allows set")
    # create only
    co = mk("co", P.CREATE)
    anon.create(co + "/kid")
    expect_raises(NoAuthError, lambda: anon.delete(co + "/kid"),
                  "delete needs DELETE on the parent")
    expect_raises(NoAuthError, lambda: anon.get_children(co),
                  "get_children needs READ")
    # delete permission lives on the parent; the child's own ACL is
    # irrelevant for its deletion
    do = mk("do", P.DELETE | P.CREATE)
    anon.create(do + "/locked", acl=[ACL(0, Id("world", "anyone"))])
    expect_raises(NoAuthError, lambda: anon.get(do + "/locked"),
                  "perms 0 denies get")
    anon.delete(do + "/locked")
    expect(anon.exists(do + "/locked") is None,
           "child with empty perms deleted via parent's DELETE")
    # admin permission governs set_acls
    ad = mk("ad", P.ADMIN)
    anon.set_acls(ad, [ACL(P.ALL, Id("world", "anyone"))])
    expect_eq(anon.get(ad)[0], b"d", "after ADMIN set_acls to ALL")
    # multi: a NoAuth inside fails the whole multi
    t = anon.transaction()
    t.create(ctx.p("ad", "ok"))
    t.set_data(ro, b"x")
    res = t.commit()
    expect_eq([type(r).__name__ for r in res],
              ["RolledBackError", "NoAuthError"], "NoAuth in multi")


@check("acl_auth_scheme")
def check_acl_auth_scheme(ctx):
    c = ctx.admin
    anon = ctx.client()
    # 'auth' scheme with no authenticated identity: InvalidACL
    expect_raises(InvalidACLError,
                  lambda: anon.create(ctx.p("a"),
                                      acl=[ACL(31, Id("auth", ""))]),
                  "auth ACL without credentials")
    u = ctx.client(auth=[("digest", "%s:%s" % (USER, PASS))])
    u.create(ctx.p("a"), b"mine", acl=[ACL(31, Id("auth", ""))])
    acls, _ = u.get_acls(ctx.p("a"))
    expect_eq([(x.perms, x.id.scheme, x.id.id) for x in acls],
              [(31, "digest", make_digest_acl_credential(USER, PASS))],
              "auth ACL expands to the session's digest identity")
    expect_raises(NoAuthError, lambda: anon.get(ctx.p("a")), "anon get")
    expect_eq(u.get(ctx.p("a"))[0], b"mine", "creator get")
    # set_acls with auth scheme as well
    u.create(ctx.p("b"))
    u.set_acls(ctx.p("b"), [ACL(Permissions.READ, Id("auth", ""))])
    acls, st = u.get_acls(ctx.p("b"))
    expect_eq([(x.perms, x.id.scheme, x.id.id) for x in acls],
              [(Permissions.READ, "digest", USER + ":x")],
              "set_acls with auth scheme (READ only: id redacted)")
    expect_eq(st.aversion, 1, "aversion")
    # ip scheme
    c.create(ctx.p("ip"), b"i", acl=[ACL(31, Id("ip", "127.0.0.1"))])
    expect_eq(anon.get(ctx.p("ip"))[0], b"i", "ip ACL matches 127.0.0.1")
    c.create(ctx.p("ipnet"), b"i", acl=[ACL(31, Id("ip", "127.0.0.0/8"))])
    expect_eq(anon.get(ctx.p("ipnet"))[0], b"i", "ip/8 ACL matches")
    c.create(ctx.p("ipother"), b"i", acl=[ACL(31, Id("ip", "10.1.2.3"))])
    expect_raises(NoAuthError, lambda: anon.get(ctx.p("ipother")),
                  "ip ACL for another address")


@check("acl_invalid")
def check_acl_invalid(ctx):
    c = ctx.admin
    bad_acls = [
        ("unknown scheme", [ACL(31, Id("foo", "bar"))]),
        ("digest without colon", [ACL(31, Id("digest", "nocolon"))]),
        ("world with other id", [ACL(31, Id("world", "someone"))]),
        ("bad ip", [ACL(31, Id("ip", "not-an-ip"))]),
        ("empty list", []),
    ]
    for what, acl in bad_acls:
        # raw request: kazoo would replace an empty list with its default
        expect_raises(InvalidACLError,
                      lambda: raw_call(c, Create(ctx.p("x"), b"", acl, 0)),
                      "create with ACL: " + what)
    expect(c.exists(ctx.p("x")) is None, "nothing created")
    c.create(ctx.p("y"))
    for what, acl in bad_acls:
        expect_raises(InvalidACLError,
                      lambda: raw_call(c, SetACL(ctx.p("y"), acl, -1)),
                      "set_acls with ACL: " + what)
    expect_eq(c.exists(ctx.p("y")).aversion, 0, "aversion unchanged")
    # an invalid ACL inside a multi fails it
    t = c.transaction()
    t.create(ctx.p("m1"))
    t.create(ctx.p("m2"), acl=[ACL(31, Id("foo", "bar"))])
    res = t.commit()
    expect_eq([type(r).__name__ for r in res],
              ["RolledBackError", "InvalidACLError"], "bad ACL in multi")


# --------------------------------------------------------------------------
# sync
# --------------------------------------------------------------------------

@check("sync")
def check_sync(ctx):
    a = ctx.admin
    b = ctx.client()
    a.create(ctx.p("n"), b"0")
    for i in range(20):
        a.set(ctx.p("n"), str(i).encode())
        expect_eq(b.sync(ctx.p("n")), ctx.p("n"), "sync returns its path")
        expect_eq(b.get(ctx.p("n"))[0], str(i).encode(),
                  "read after sync sees the write")
    # sync does not require the node to exist
    expect_eq(b.sync(ctx.p("does", "not", "exist")),
              ctx.p("does", "not", "exist"), "sync of missing path")
    # pipelined: write on A acknowledged, then async sync+get on B
    a.set(ctx.p("n"), b"last")
    s = b.sync_async(ctx.p("n"))
    g = b.get_async(ctx.p("n"))
    s.get(timeout=10)
    expect_eq(g.get(timeout=10)[0], b"last", "async sync then get")


# --------------------------------------------------------------------------
# recipes with several concurrent clients
# --------------------------------------------------------------------------

def run_threads(fns, timeout=40):
    errors = []

    def wrap(fn):
        def inner():
            try:
                fn()
            except Exception:
                errors.append(traceback.format_exc())
        return inner
    ts = [threading.Thread(target=wrap(f), daemon=True) for f in fns]
    for t in ts:
        t.start()
    deadline = time.monotonic() + timeout
    for t in ts:
        t.join(max(0.1, deadline - time.monotonic()))
    alive = [t for t in ts if t.is_alive()]
    expect(not errors, "worker errors:\n" + "\n".join(errors))
    expect(not alive, "%d worker threads still running after %ss"
           % (len(alive), timeout))


class OverlapDetector(object):
    def __init__(self, limit=1):
        self.lock = threading.Lock()
        self.inside = 0
        self.max_inside = 0
        self.entries = 0
        self.limit = limit

    def enter(self):
        with self.lock:
            self.inside += 1
            self.entries += 1
            self.max_inside = max(self.max_inside, self.inside)

    def leave(self):
        with self.lock:
            self.inside -= 1


@check("recipe_lock")
def check_recipe_lock(ctx):
    det = OverlapDetector()
    clients = [ctx.client() for _ in range(4)]

    def worker(cl, ident):
        lock = cl.Lock(ctx.p("lock"), ident)
        for _ in range(5):
            with lock:
                det.enter()
                time.sleep(0.01)
                det.leave()
    run_threads([lambda cl=cl, i=i: worker(cl, "w%d" % i)
                 for i, cl in enumerate(clients)])
    expect_eq(det.entries, 20, "lock acquisitions")
    expect_eq(det.max_inside, 1, "max concurrent holders of the lock")
    # contenders / non-blocking acquire
    l1 = clients[0].Lock(ctx.p("lock2"), "first")
    l2 = clients[1].Lock(ctx.p("lock2"), "second")
    expect(l1.acquire(timeout=5), "first acquire")
    expect(not l2.acquire(blocking=False), "second must not get a held lock")
    expect_eq(l2.contenders(), ["first"], "contenders")
    # holder's session closing releases the lock (ephemeral node)
    clients[0].stop()
    expect(l2.acquire(timeout=10), "lock released by closed session")
    l2.release()


@check("recipe_semaphore")
def check_recipe_semaphore(ctx):
    det = OverlapDetector()
    clients = [ctx.client() for _ in range(4)]

    def worker(cl, ident):
        sem = cl.Semaphore(ctx.p("sem"), ident, max_leases=2)
        for _ in range(3):
            with sem:
                det.enter()
                time.sleep(0.05)
                det.leave()
    run_threads([lambda cl=cl, i=i: worker(cl, "s%d" % i)
                 for i, cl in enumerate(clients)])
    expect_eq(det.entries, 12, "semaphore acquisitions")
    expect(det.max_inside <= 2, "at most 2 holders, saw %d" % det.max_inside)
    expect_eq(det.max_inside, 2, "two leases used concurrently")


@check("recipe_election")
def check_recipe_election(ctx):
    clients = [ctx.client() for _ in range(3)]
    det = OverlapDetector()
    leaders = []

    def lead(ident):
        det.enter()
        leaders.append(ident)
        time.sleep(0.1)
        det.leave()
    elections = [cl.Election(ctx.p("elect"), "c%d" % i)
                 for i, cl in enumerate(clients)]
    # all contend before anyone leads: wait until 3 contenders visible
    started = threading.Barrier(3)

    def run(e, ident):
        started.wait(10)
        e.run(lead, ident)
    run_threads([lambda e=e, i=i: run(e, "c%d" % i)
                 for i, e in enumerate(elections)])
    expect_eq(sorted(leaders), ["c0", "c1", "c2"], "each contender led once")
    expect_eq(det.max_inside, 1, "one leader at a time")
    # contenders() shows a waiting contender in order
    holder = threading.Event()
    release = threading.Event()

    def long_lead():
        holder.set()
        release.wait(10)
    t = threading.Thread(target=lambda: elections[0].run(long_lead),
                         daemon=True)
    t.start()
    expect(holder.wait(10), "leader elected")
    waiting = threading.Thread(target=lambda: elections[1].run(lambda: None),
                               daemon=True)
    waiting.start()
    wait_until(lambda: len(elections[2].contenders()) == 2, 10,
               "two contenders")
    expect_eq(elections[2].contenders()[0], "c0", "leader first")
    release.set()
    t.join(10)
    waiting.join(10)
    expect(not waiting.is_alive(), "second contender ran after release")


@check("recipe_barrier")
def check_recipe_barrier(ctx):
    admin = ctx.admin
    clients = [ctx.client() for _ in range(3)]
    b = admin.Barrier(ctx.p("barrier"))
    b.create()
    passed = []

    def waiter(cl, i):
        ok = cl.Barrier(ctx.p("barrier")).wait(timeout=15)
        passed.append((i, ok, time.monotonic()))
    threads = [threading.Thread(target=waiter, args=(cl, i), daemon=True)
               for i, cl in enumerate(clients)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    expect_eq(passed, [], "nobody passes a raised barrier")
    removed = time.monotonic()
    b.remove()
    for t in threads:
        t.join(10)
    expect_eq(sorted(p[0] for p in passed), [0, 1, 2], "all passed")
    expect(all(p[1] for p in passed), "wait() returned True for all")
    expect(all(p[2] - removed < 5 for p in passed), "passed promptly")
    # waiting on a missing barrier returns at once
    expect(clients[0].Barrier(ctx.p("none")).wait(timeout=2),
           "missing barrier passes")


@check("recipe_double_barrier")
def check_recipe_double_barrier(ctx):
    n = 3
    clients = [ctx.client() for _ in range(n)]
    lock = threading.Lock()
    entered_calls = []
    entered = []
    left_calls = []
    left = []

    def participant(cl, i):
        db = cl.DoubleBarrier(ctx.p("db"), n, identifier="p%d" % i)
        time.sleep(0.2 * i)       # arrive one by one
        with lock:
            entered_calls.append(time.monotonic())
        db.enter()
        with lock:
            entered.append(time.monotonic())
        time.sleep(0.1 * (n - i))
        with lock:
            left_calls.append(time.monotonic())
        db.leave()
        with lock:
            left.append(time.monotonic())
    run_threads([lambda cl=cl, i=i: participant(cl, i)
                 for i, cl in enumerate(clients)])
    expect(min(entered) >= max(entered_calls),
           "nobody may pass enter() before all %d have arrived" % n)
    expect(min(left) >= max(left_calls),
           "nobody may pass leave() before all have left")


@check("recipe_counter")
def check_recipe_counter(ctx):
    clients = [ctx.client() for _ in range(4)]

    def worker(cl):
        counter = cl.Counter(ctx.p("counter"))
        for _ in range(25):
            counter += 1
    run_threads([lambda cl=cl: worker(cl) for cl in clients])
    c = ctx.admin.Counter(ctx.p("counter"))
    expect_eq(c.value, 100, "counter after 4x25 concurrent increments")
    c -= 30
    expect_eq(c.value, 70, "counter after decrement")
    expect_eq(ctx.admin.get(ctx.p("counter"))[1].version, 101,
              "one version per successful change")
    fc = ctx.admin.Counter(ctx.p("fcounter"), default=0.5)
    fc += 1.25
    expect_eq(fc.value, 1.75, "float counter")


@check("recipe_queue")
def check_recipe_queue(ctx):
    clients = [ctx.client() for _ in range(4)]
    q = ctx.admin.Queue(ctx.p("q"))
    # priority ordering from one producer
    q.put(b"low", priority=200)
    q.put(b"high", priority=10)
    q.put(b"mid", priority=100)
    expect_eq([q.get(), q.get(), q.get()], [b"high", b"mid", b"low"],
              "priority order")
    expect_eq(q.get(), None, "empty queue")
    # concurrent producers and consumers: every item exactly once
    got = []
    lock = threading.Lock()

    def producer(cl, k):
        qq = cl.Queue(ctx.p("q"))
        for i in range(15):
            qq.put(("%d-%d" % (k, i)).encode())

    def consumer(cl):
        qq = cl.Queue(ctx.p("q"))
        idle = time.monotonic()
        while time.monotonic() - idle < 1.5:
            item = qq.get()
            if item is None:
                time.sleep(0.02)
                continue
            idle = time.monotonic()
            with lock:
                got.append(item)
    run_threads([lambda: producer(clients[0], 0),
                 lambda: producer(clients[1], 1),
                 lambda: consumer(clients[2]), lambda: consumer(clients[3])])
    expected = sorted(("%d-%d" % (k, i)).encode()
                      for k in range(2) for i in range(15))
    expect_eq(sorted(got), expected, "each item consumed exactly once")


@check("recipe_locking_queue")
def check_recipe_locking_queue(ctx):
    clients = [ctx.client() for _ in range(3)]
    lq = clients[0].LockingQueue(ctx.p("lq"))
    lq.put_all([b"a", b"b", b"c"], priority=50)
    lq.put(b"first", priority=1)
    expect_eq(len(lq), 4, "queue length")
    item = lq.get(timeout=5)
    expect_eq(item, b"first", "priority item first")
    expect(lq.holds_lock(), "holds lock on taken item")
    # another consumer cannot take the locked item
    other = clients[1].LockingQueue(ctx.p("lq"))
    o = other.get(timeout=5)
    expect(o in (b"a", b"b", b"c"), "other consumer got a different item")
    # releasing puts it back (not consumed)
    expect(lq.release(), "release")
    again = clients[2].LockingQueue(ctx.p("lq")).get(timeout=5)
    expect_eq(again, b"first", "released item available again")
    expect(other.consume(), "consume")
    expect_eq(len(lq), 3, "one item consumed")
    # a consumer whose session dies releases its item (ephemeral lock)
    clients[2].stop()
    taken = lq.get(timeout=10)
    expect_eq(taken, b"first", "item of dead consumer is available")
    expect(lq.consume(), "consume after takeover")
    # get with timeout on empty queue
    rest = []
    while True:
        x = other.get(timeout=0.5)
        if x is None:
            break
        rest.append(x)
        other.consume()
    expect_eq(len(rest) + 2, 4, "all items eventually consumed: %r" % rest)


@check("recipe_watchers_cache")
def check_recipe_watchers_cache(ctx):
    """DataWatch, ChildrenWatch and TreeCache: heavy watch re-registration."""
    c = ctx.admin
    w = ctx.client()
    c.create(ctx.p("d"), b"v0")
    c.create(ctx.p("kids"))
    data_seen = []
    kids_seen = []
    dw_lock = threading.Lock()

    @w.DataWatch(ctx.p("d"))
    def _dw(data, stat):
        with dw_lock:
            data_seen.append(data)

    @w.ChildrenWatch(ctx.p("kids"))
    def _cw(children):
        with dw_lock:
            kids_seen.append(sorted(children))

    cache = TreeCache(w, ctx.p("tree"))
    c.create(ctx.p("tree"))
    cache.start()
    for i in range(1, 6):
        c.set(ctx.p("d"), ("v%d" % i).encode())
        time.sleep(0.05)
    for n in ("a", "b", "c"):
        c.create(ctx.p("kids", n))
        time.sleep(0.05)
    c.create(ctx.p("tree", "x", "y"), b"deep", makepath=True)
    c.set(ctx.p("tree", "x"), b"xd")
    wait_until(lambda: data_seen and data_seen[-1] == b"v5", 10,
               "DataWatch sees final value (seen %r)" % data_seen)
    wait_until(lambda: kids_seen and kids_seen[-1] == ["a", "b", "c"], 10,
               "ChildrenWatch sees all children (seen %r)" % kids_seen)

    def cache_ok():
        y = cache.get_data(ctx.p("tree", "x", "y"))
        x = cache.get_data(ctx.p("tree", "x"))
        return y is not None and y.data == b"deep" and x is not None and \
            x.data == b"xd"
    wait_until(cache_ok, 10, "TreeCache converges")
    c.delete(ctx.p("tree", "x"), recursive=True)
    wait_until(lambda: cache.get_data(ctx.p("tree", "x")) is None, 10,
               "TreeCache sees delete")
    cache.close()
    expect_eq(data_seen[0], b"v0", "DataWatch initial value")


# --------------------------------------------------------------------------
# server info and four-letter words
# --------------------------------------------------------------------------

def _kv(text, sep):
    out = {}
    for line in text.splitlines():
        if sep in line:
            k, v = line.split(sep, 1)
            out[k.strip()] = v.strip()
    return out


@check("fourlw_basic")
def check_fourlw_basic(ctx):
    c = ctx.admin
    expect_eq(c.command(b"ruok"), "imok", "ruok via kazoo")
    expect_eq(four_letter(ctx.hosts, "isro"), "rw", "isro")
    srvr = four_letter(ctx.hosts, "srvr")
    for key in ("Zookeeper version:", "Latency min/avg/max:", "Received:",
                "Sent:", "Connections:", "Outstanding:", "Zxid: 0x",
                "Mode: " + EXPECTED_MODE, "Node count:"):
        expect(key in srvr, "srvr must contain %r; got:\n%s" % (key, srvr))
    kv = _kv(srvr, ":")
    expect(int(kv["Node count"]) >= 5, "node count: %s" % kv["Node count"])
    expect(int(kv["Connections"]) >= 1, "connections")
    zxid = int(kv["Zxid"], 16)
    st = c.set(ctx.base, b"x")
    srvr2 = four_letter(ctx.hosts, "srvr")
    zxid2 = int(_kv(srvr2, ":")["Zxid"], 16)
    expect(zxid2 >= st.mzxid > zxid, "srvr Zxid tracks the last zxid: "
           "%x -> write %x -> %x" % (zxid, st.mzxid, zxid2))
    stat = four_letter(ctx.hosts, "stat")
    expect("Clients:" in stat and "Mode: " + EXPECTED_MODE in stat and
           "Node count:" in stat, "stat output:\n" + stat)
    expect("/127.0.0.1:" in stat, "stat lists the connected clients")
    ver = c.server_version()
    expect(len(ver) >= 2 and ver[0] == 3,
           "server_version (parsed from envi) %r" % (ver,))
    # an unknown 4-letter word: the connection is closed without output
    expect_eq(four_letter(ctx.hosts, "zzzz"), "", "unknown 4lw")


@check("fourlw_mntr_conf_envi")
def check_fourlw_mntr_conf_envi(ctx):
    c = ctx.admin
    c.create(ctx.p("e"), ephemeral=True)
    mntr = four_letter(ctx.hosts, "mntr")
    kv = {}
    for line in mntr.splitlines():
        parts = line.split("\t")
        expect(len(parts) == 2, "mntr line must be 'key<TAB>value': %r"
               % line)
        kv[parts[0]] = parts[1]
    for key in ("zk_version", "zk_server_state", "zk_znode_count",
                "zk_watch_count", "zk_ephemerals_count",
                "zk_approximate_data_size", "zk_num_alive_connections",
                "zk_outstanding_requests", "zk_avg_latency",
                "zk_max_latency", "zk_min_latency", "zk_packets_received",
                "zk_packets_sent"):
        expect(key in kv, "mntr lacks %s; got keys %r" % (key,
                                                         sorted(kv)[:40]))
    expect_eq(kv["zk_server_state"], EXPECTED_MODE, "zk_server_state")
    expect(int(kv["zk_znode_count"]) >= 5, "zk_znode_count")
    expect(int(kv["zk_ephemerals_count"]) >= 1, "zk_ephemerals_count")
    expect(int(kv["zk_num_alive_connections"]) >= 1, "alive connections")
    conf = _kv(four_letter(ctx.hosts, "conf"), "=")
    port = ctx.hosts.split(",")[0].rsplit(":", 1)[1]
    expect_eq(conf.get("clientPort"), port, "conf clientPort")
    for key in ("dataDir", "tickTime", "maxClientCnxns",
                "minSessionTimeout", "maxSessionTimeout"):
        expect(key in conf, "conf lacks %s: %r" % (key, conf))
    tick = int(conf["tickTime"])
    expect(tick > 0, "tickTime")
    expect(int(conf["minSessionTimeout"]) <= int(conf["maxSessionTimeout"]),
           "min <= max session timeout")
    envi = four_letter(ctx.hosts, "envi")
    expect(envi.startswith("Environment:"), "envi header:\n" + envi[:200])
    ekv = _kv(envi, "=")
    for key in ("zookeeper.version", "host.name", "os.name"):
        expect(key in ekv, "envi lacks %s" % key)


@check("fourlw_sessions_watches")
def check_fourlw_sessions_watches(ctx):
    c = ctx.client()
    sid = c.client_id[0]
    sid_hex = "0x%x" % sid
    c.ensure_path(ctx.p("w"))
    c.get(ctx.p("w"), watch=lambda e: None)
    c.create(ctx.p("eph"), ephemeral=True)
    cons = four_letter(ctx.hosts, "cons")
    mine = [ln for ln in cons.splitlines() if "sid=" + sid_hex in ln]
    expect(len(mine) == 1, "cons must have one line for session %s:\n%s"
           % (sid_hex, cons))
    expect(mine[0].strip().startswith("/127.0.0.1:"),
           "cons line starts with the client address: %r" % mine[0])
    for key in ("queued=", "recved=", "sent=", "lop=", "to=", "lzxid=0x"):
        expect(key in mine[0], "cons line lacks %s: %r" % (key, mine[0]))
    wchs = four_letter(ctx.hosts, "wchs")
    m = wchs.splitlines()
    expect(len(m) >= 2 and "connections watching" in m[0] and
           m[1].startswith("Total watches:"), "wchs format:\n" + wchs)
    expect(int(m[1].split(":")[1]) >= 1, "total watches >= 1")
    wchc = four_letter(ctx.hosts, "wchc")
    expect(sid_hex in wchc and ctx.p("w") in wchc,
           "wchc lists session %s watching %s:\n%s"
           % (sid_hex, ctx.p("w"), wchc[:2000]))
    lines = wchc.splitlines()
    i = lines.index(sid_hex)
    expect("\t" + ctx.p("w") in lines[i + 1:], "wchc path under session")
    wchp = four_letter(ctx.hosts, "wchp")
    lines = wchp.splitlines()
    expect(ctx.p("w") in lines, "wchp lists the path:\n" + wchp[:2000])
    i = lines.index(ctx.p("w"))
    expect_eq(lines[i + 1], "\t" + sid_hex, "wchp session under path")
    dump = four_letter(ctx.hosts, "dump")
    expect(ctx.p("eph") in dump and sid_hex in dump,
           "dump lists the session's ephemeral:\n" + dump[:2000])
    # watch is one-shot: after it fires it leaves wchp
    ctx.admin.set(ctx.p("w"), b"x")
    c.sync(ctx.p("w"))
    c.exists(ctx.p("w"))
    wchp2 = four_letter(ctx.hosts, "wchp")
    expect(ctx.p("w") not in wchp2.splitlines(),
           "fired watch still listed by wchp:\n" + wchp2[:2000])


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def run_check(name, hosts):
    ctx = Ctx(hosts, name)
    t0 = time.monotonic()
    try:
        CHECKS[name](ctx)
        print("PASS %s (%.2fs)" % (name, time.monotonic() - t0))
        return True
    except CheckFailed as e:
        print("FAIL %s: %s" % (name, e))
        return False
    except Exception:
        print("FAIL %s: unexpected exception:\n%s"
              % (name, traceback.format_exc()))
        return False
    finally:
        ctx.close()


DONE_MARKER = "@@check-done"


def serve(hosts, timeout):
    """One process for many checks: the test suite starts one per target instead of one per check. Each check keeps
    its own watchdog window; a hung check ends the process, and the caller starts a new one for the next check."""
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        if name in CHECKS:
            faulthandler.dump_traceback_later(timeout, exit=True)
            ok = run_check(name, hosts)
            faulthandler.cancel_dump_traceback_later()
        else:
            print("unknown check %r; use --list" % name)
            ok = False
        print("%s %s %s" % (DONE_MARKER, name, "PASS" if ok else "FAIL"))
        sys.stdout.flush()
    # kazoo's non-daemon threads must not keep the process alive
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hosts")
    ap.add_argument("--check")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--serve", action="store_true",
                    help="run the checks named on stdin, one a line, each ended by\n"
                         "'%s NAME PASS|FAIL' (the test suite's one process per target)" % DONE_MARKER)
    ap.add_argument("--timeout", type=float, default=55.0,
                    help="watchdog: dump stacks and exit 1 after this many s")
    ap.add_argument("--child-ephemeral", help=argparse.SUPPRESS)
    ap.add_argument("--child-timeout", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.list:
        for n in CHECK_ORDER:
            print(n)
        return 0
    if args.child_ephemeral:
        _child_ephemeral_main(args.hosts, args.child_ephemeral,
                              args.child_timeout)
        return 0
    if args.serve:
        if not args.hosts:
            ap.error("--serve needs --hosts")
        return serve(args.hosts, args.timeout)
    if not args.hosts or not args.check:
        ap.error("--hosts and --check are required (or --list)")
    names = CHECK_ORDER if args.check == "all" else [args.check]
    for n in names:
        if n not in CHECKS:
            print("unknown check %r; use --list" % n)
            return 1
    timeout = args.timeout * (len(names) if args.check == "all" else 1)
    faulthandler.dump_traceback_later(timeout, exit=True)
    ok = True
    for n in names:
        ok = run_check(n, args.hosts) and ok
    faulthandler.cancel_dump_traceback_later()
    sys.stdout.flush()
    # kazoo's non-daemon threads must not keep a failed run alive
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
