/*
 * Real-client compatibility checks using Apache ZooKeeper's own Java client.
 *
 * Every check runs unchanged against Apache ZooKeeper 3.8 and against
 * Coordination.Akka. It covers the protocol operations kazoo cannot reach:
 * create2 with every CreateMode, containers, TTL nodes, getAllChildrenNumber,
 * getEphemerals, multiRead, persistent and persistent-recursive watches,
 * removeWatches / removeAllWatches (checkWatches and removeWatches opcodes),
 * whoAmI, setACL/getACL with stat, pipelined async requests, session
 * re-attach, SetWatches after a reconnect, closeSession, plus a zkCli run.
 *
 * Build:  javac -cp /usr/share/java/zookeeper.jar -d OUT ZkChecks.java
 * Run:    java -cp OUT:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar \
 *              ZkChecks HOST:PORT CHECKNAME      (or: ZkChecks --list)
 *         ZkChecks HOST:PORT all runs every check; ZkChecks HOST:PORT --serve
 *         runs the checks named on stdin, one a line, each ended by a line
 *         "@@check-done NAME PASS|FAIL" (the test suite's one JVM per target).
 *
 * Exit 0 on pass; on failure prints what was expected and what was seen and
 * exits 1. A watchdog (ZKCHECKS_TIMEOUT_S, default 55 s per check) dumps all
 * threads and exits 1 if a check hangs.
 *
 * Server requirements (both targets are configured so): tick time 500 ms,
 * container/TTL check interval about 1 s, extended types (TTL) enabled,
 * 4-letter words enabled. zkCli is found at $ZKCLI or
 * /usr/share/zookeeper/bin/zkCli.sh.
 */

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZKUtil;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;

public final class ZkChecks {

    // ------------------------------------------------------------------
    // framework
    // ------------------------------------------------------------------

    static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CheckFailed(String msg) {
            super(msg);
        }
    }

    interface Check {
        void run(Ctx ctx) throws Exception;
    }

    interface Action {
        Object run() throws Exception;
    }

    static final Map<String, Check> CHECKS = new LinkedHashMap<>();

    static {
        CHECKS.put("create_modes_stat", ZkChecks::createModesStat);
        CHECKS.put("null_data", ZkChecks::nullData);
        CHECKS.put("container_nodes", ZkChecks::containerNodes);
        CHECKS.put("ttl_nodes", ZkChecks::ttlNodes);
        CHECKS.put("all_children_number", ZkChecks::allChildrenNumber);
        CHECKS.put("get_ephemerals", ZkChecks::getEphemerals);
        CHECKS.put("multi_read", ZkChecks::multiRead);
        CHECKS.put("multi_error_results", ZkChecks::multiErrorResults);
        CHECKS.put("persistent_watch", ZkChecks::persistentWatch);
        CHECKS.put("persistent_recursive_watch", ZkChecks::persistentRecursiveWatch);
        CHECKS.put("remove_watches", ZkChecks::removeWatches);
        CHECKS.put("who_am_i", ZkChecks::whoAmI);
        CHECKS.put("acl_with_stat", ZkChecks::aclWithStat);
        CHECKS.put("async_pipelined_fifo", ZkChecks::asyncPipelinedFifo);
        CHECKS.put("watch_before_async_response", ZkChecks::watchBeforeAsyncResponse);
        CHECKS.put("session_reattach", ZkChecks::sessionReattach);
        CHECKS.put("set_watches_on_reconnect", ZkChecks::setWatchesOnReconnect);
        CHECKS.put("close_session_ephemerals", ZkChecks::closeSessionEphemerals);
        CHECKS.put("get_children_stat_and_data", ZkChecks::getChildrenStatAndData);
        CHECKS.put("zkcli", ZkChecks::zkCli);
    }

    static void fail(String msg) {
        throw new CheckFailed(msg);
    }

    static void check(boolean cond, String msg) {
        if (!cond) {
            fail(msg);
        }
    }

    static void eq(Object actual, Object expected, String what) {
        boolean same = (actual == null) ? expected == null
            : (actual instanceof byte[] && expected instanceof byte[])
                ? Arrays.equals((byte[]) actual, (byte[]) expected)
                : actual.equals(expected);
        if (!same) {
            fail(what + ": expected " + show(expected) + ", saw " + show(actual));
        }
    }

    static String show(Object o) {
        if (o instanceof byte[]) {
            return "bytes\"" + new String((byte[]) o, StandardCharsets.UTF_8) + "\"";
        }
        if (o instanceof Stat) {
            return statStr((Stat) o);
        }
        if (o instanceof String) {
            return "\"" + o + "\"";
        }
        return String.valueOf(o);
    }

    static String statStr(Stat s) {
        return String.format("Stat{czxid=0x%x,mzxid=0x%x,pzxid=0x%x,ctime=%d,mtime=%d,version=%d,"
                + "cversion=%d,aversion=%d,ephemeralOwner=0x%x,dataLength=%d,numChildren=%d}",
            s.getCzxid(), s.getMzxid(), s.getPzxid(), s.getCtime(), s.getMtime(), s.getVersion(),
            s.getCversion(), s.getAversion(), s.getEphemeralOwner(), s.getDataLength(),
            s.getNumChildren());
    }

    /** Runs the action; it must fail with a KeeperException of the given code. */
    static KeeperException expectCode(Code code, Action action, String what) {
        Object result;
        try {
            result = action.run();
        } catch (KeeperException e) {
            if (e.code() != code) {
                fail(what + ": expected " + code + ", saw " + e.code() + " (" + e + ")");
            }
            return e;
        } catch (Exception e) {
            fail(what + ": expected " + code + ", saw " + e);
            return null;
        }
        fail(what + ": expected " + code + ", but the call succeeded and returned " + show(result));
        return null;
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            throw new RuntimeException(e);
        }
    }

    /** A watcher that records events in order and lets a check wait for them. */
    static final class Events implements Watcher {
        final String name;
        final LinkedBlockingQueue<WatchedEvent> queue = new LinkedBlockingQueue<>();
        final List<WatchedEvent> all = new CopyOnWriteArrayList<>();
        final List<String> log; // optional shared ordering log

        Events(String name) {
            this(name, null);
        }

        Events(String name, List<String> log) {
            this.name = name;
            this.log = log;
        }

        @Override
        public void process(WatchedEvent event) {
            if (event.getType() == EventType.None) {
                return; // connection state changes are not node events
            }
            if (log != null) {
                log.add("event:" + name + ":" + event.getType() + ":" + event.getPath());
            }
            all.add(event);
            queue.add(event);
        }

        WatchedEvent next(String what) throws InterruptedException {
            WatchedEvent e = queue.poll(10, TimeUnit.SECONDS);
            if (e == null) {
                fail("timed out waiting for " + what + " on watcher " + name + "; events so far: " + all);
            }
            return e;
        }

        void expect(EventType type, String path, String what) throws InterruptedException {
            WatchedEvent e = next(what);
            eq(e.getType() + " " + e.getPath(), type + " " + path, what + " (watcher " + name + ")");
        }

        void expectNone(String what) {
            WatchedEvent e = queue.poll();
            if (e != null) {
                fail(what + ": watcher " + name + " got an unexpected event " + e.getType() + " " + e.getPath()
                    + " (all: " + all + ")");
            }
        }
    }

    /** Session-state watcher: records connection states. */
    static final class StateWatcher implements Watcher {
        final LinkedBlockingQueue<KeeperState> states = new LinkedBlockingQueue<>();
        final Watcher forward;

        StateWatcher(Watcher forward) {
            this.forward = forward;
        }

        @Override
        public void process(WatchedEvent event) {
            if (event.getType() == EventType.None) {
                states.add(event.getState());
            } else if (forward != null) {
                forward.process(event);
            }
        }

        KeeperState await(Set<KeeperState> wanted, long ms) throws InterruptedException {
            long deadline = System.currentTimeMillis() + ms;
            while (true) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    return null;
                }
                KeeperState s = states.poll(left, TimeUnit.MILLISECONDS);
                if (s != null && wanted.contains(s)) {
                    return s;
                }
            }
        }
    }

    static final class Ctx implements AutoCloseable {
        final String hosts;
        final String base;
        final List<ZooKeeper> clients = new ArrayList<>();
        private ZooKeeper admin;

        Ctx(String hosts, String checkName) {
            this.hosts = hosts;
            this.base = "/jc-" + checkName.replace('_', '-') + "-" + UUID.randomUUID().toString().substring(0, 10);
        }

        ZooKeeper connect() throws Exception {
            return connect(hosts, 10000, null);
        }

        ZooKeeper connect(String connectString, int timeoutMs, Watcher forward) throws Exception {
            StateWatcher sw = new StateWatcher(forward);
            ZooKeeper zk = new ZooKeeper(connectString, timeoutMs, sw);
            clients.add(zk);
            KeeperState st = sw.await(Set.of(KeeperState.SyncConnected), 10000);
            if (st == null) {
                fail("could not connect to " + connectString + " within 10 s (state " + zk.getState() + ")");
            }
            return zk;
        }

        ZooKeeper admin() throws Exception {
            if (admin == null) {
                admin = connect();
                admin.create(base, new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            }
            return admin;
        }

        String p(String... parts) {
            StringBuilder sb = new StringBuilder(base);
            for (String part : parts) {
                sb.append('/').append(part);
            }
            return sb.toString();
        }

        @Override
        public void close() {
            for (ZooKeeper zk : clients) {
                try {
                    zk.close(2000);
                } catch (Exception ignored) {
                    // best effort
                }
            }
            try {
                StateWatcher sw = new StateWatcher(null);
                ZooKeeper zk = new ZooKeeper(hosts, 5000, sw);
                if (sw.await(Set.of(KeeperState.SyncConnected), 3000) != null) {
                    zk.addAuthInfo("digest", b(USER + ":" + PASS));
                    try {
                        ZKUtil.deleteRecursive(zk, base);
                    } catch (Exception ignored) {
                        // best effort
                    }
                }
                zk.close(2000);
            } catch (Exception ignored) {
                // best effort
            }
        }
    }

    static final String USER = "compat-user";
    static final String PASS = "compat-pass";

    static String fourLetter(String hosts, String cmd) throws IOException {
        String hp = hosts.split(",")[0];
        int colon = hp.lastIndexOf(':');
        try (Socket sock = new Socket()) {
            sock.connect(new InetSocketAddress(hp.substring(0, colon), Integer.parseInt(hp.substring(colon + 1))), 5000);
            sock.setSoTimeout(10000);
            sock.getOutputStream().write(b(cmd));
            sock.getOutputStream().flush();
            return new String(sock.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    // ------------------------------------------------------------------
    // create2 / CreateMode
    // ------------------------------------------------------------------

    static void createModesStat(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        long before = System.currentTimeMillis();
        Stat s = new Stat();
        String p = zk.create(ctx.p("pers"), b("d1"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, s);
        eq(p, ctx.p("pers"), "create2 path");
        check(s.getCzxid() > 0, "czxid > 0: " + statStr(s));
        eq(s.getMzxid(), s.getCzxid(), "mzxid == czxid");
        eq(s.getPzxid(), s.getCzxid(), "pzxid == czxid");
        eq(s.getCtime(), s.getMtime(), "ctime == mtime");
        check(Math.abs(s.getCtime() - before) < 10000, "ctime is wall clock ms: " + s.getCtime() + " vs " + before);
        eq(s.getVersion(), 0, "version");
        eq(s.getCversion(), 0, "cversion");
        eq(s.getAversion(), 0, "aversion");
        eq(s.getEphemeralOwner(), 0L, "ephemeralOwner");
        eq(s.getDataLength(), 2, "dataLength");
        eq(s.getNumChildren(), 0, "numChildren");
        eq(zk.exists(p, false), s, "exists stat equals create2 stat");

        Stat se = new Stat();
        String e = zk.create(ctx.p("eph"), b("e"), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL, se);
        eq(e, ctx.p("eph"), "ephemeral path");
        eq(se.getEphemeralOwner(), zk.getSessionId(), "ephemeralOwner == session id");
        check(se.getCzxid() > s.getCzxid(), "zxid grows");

        Stat ss = new Stat();
        String sq = zk.create(ctx.p("seq-"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL, ss);
        eq(sq, ctx.p("seq-0000000002"), "persistent sequential name (2 creates before)");
        eq(ss.getDataLength(), 0, "empty data length");
        Stat ses = new Stat();
        String esq = zk.create(ctx.p("eseq-"), null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL, ses);
        eq(esq, ctx.p("eseq-0000000003"), "ephemeral sequential name");
        eq(ses.getEphemeralOwner(), zk.getSessionId(), "ephemeral sequential owner");
        eq(ses.getDataLength(), 0, "null data length");
        byte[] nullData = zk.getData(esq, false, null);
        check(nullData == null || nullData.length == 0, "null data reads back empty: " + show(nullData));

        Stat parent = zk.exists(ctx.base, false);
        eq(parent.getCversion(), 4, "parent cversion after 4 child creates");
        eq(parent.getNumChildren(), 4, "parent numChildren");
        eq(parent.getPzxid(), ses.getCzxid(), "parent pzxid == last child czxid");

        // create2 of an existing node fails; the output stat is untouched
        Stat untouched = new Stat();
        expectCode(Code.NODEEXISTS, () -> zk.create(ctx.p("pers"), b("x"), Ids.OPEN_ACL_UNSAFE,
            CreateMode.PERSISTENT, untouched), "create2 existing");
        eq(untouched.getCzxid(), 0L, "stat not filled on failure");
        expectCode(Code.NONODE, () -> zk.create(ctx.p("no", "parent"), b("x"), Ids.OPEN_ACL_UNSAFE,
            CreateMode.PERSISTENT, new Stat()), "create2 without parent");
        expectCode(Code.NOCHILDRENFOREPHEMERALS, () -> zk.create(ctx.p("eph", "kid"), b("x"),
            Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, new Stat()), "create2 under ephemeral");

        // async create2 callback gets the stat too
        CountDownLatch done = new CountDownLatch(1);
        AtomicReference<Object[]> got = new AtomicReference<>();
        zk.create(ctx.p("async"), b("a"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
            (AsyncCallback.Create2Callback) (rc, path, c, name, stat) -> {
                got.set(new Object[] {rc, name, stat});
                done.countDown();
            }, null);
        check(done.await(10, TimeUnit.SECONDS), "async create2 callback");
        eq(got.get()[0], 0, "async create2 rc");
        eq(got.get()[1], ctx.p("async"), "async create2 name");
        eq(((Stat) got.get()[2]).getDataLength(), 1, "async create2 stat");
    }

    // ------------------------------------------------------------------
    // containers and TTL nodes
    // ------------------------------------------------------------------

    /** Null data is not empty data: getData returns null (buffer length -1) for a node created or set with null. */
    static void nullData(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        Stat created = new Stat();
        zk.create(ctx.p("null"), null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, created);
        eq(created.getDataLength(), 0, "create2 stat dataLength of null data");
        zk.create(ctx.p("empty"), new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        eq(zk.getData(ctx.p("null"), false, null), null, "getData of a node created with null data");
        eq(zk.getData(ctx.p("empty"), false, null), new byte[0], "getData of a node created with empty data");
        for (CreateMode mode : new CreateMode[] {CreateMode.EPHEMERAL, CreateMode.PERSISTENT_SEQUENTIAL,
            CreateMode.CONTAINER}) {
            String p = zk.create(ctx.p(mode.name().toLowerCase()), null, Ids.OPEN_ACL_UNSAFE, mode);
            eq(zk.getData(p, false, null), null, "getData of a " + mode + " node created with null data");
        }
        String ttl = zk.create(ctx.p("ttl"), null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, null, 60000);
        eq(zk.getData(ttl, false, null), null, "getData of a TTL node created with null data");
        // setData(null) makes the data null, setData(empty) makes it empty
        Stat set = zk.setData(ctx.p("empty"), null, -1);
        eq(set.getDataLength() + "/" + set.getVersion(), "0/1", "setData(null) stat");
        eq(zk.getData(ctx.p("empty"), false, null), null, "getData after setData(null)");
        zk.setData(ctx.p("null"), new byte[0], -1);
        eq(zk.getData(ctx.p("null"), false, null), new byte[0], "getData after setData(empty) over null");
        // the async callback sees null too
        CountDownLatch l = new CountDownLatch(1);
        AtomicReference<Object[]> got = new AtomicReference<>();
        zk.getData(ctx.p("empty"), false, (rc, path, c, data, stat) -> {
            got.set(new Object[] {rc, data});
            l.countDown();
        }, null);
        check(l.await(10, TimeUnit.SECONDS), "async getData callback");
        eq(got.get()[0], 0, "async getData rc");
        eq(got.get()[1], null, "async getData of null data");
        // multi: create and setData with null, then multiRead
        zk.multi(List.of(
            Op.create(ctx.p("m-null"), null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
            Op.create(ctx.p("m-empty"), new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
            Op.setData(ctx.p("null"), null, -1)));
        List<OpResult> res = zk.multi(List.of(
            Op.getData(ctx.p("m-null")), Op.getData(ctx.p("m-empty")), Op.getData(ctx.p("null"))));
        eq(((OpResult.GetDataResult) res.get(0)).getData(), null, "multiRead getData of create(null) in multi");
        eq(((OpResult.GetDataResult) res.get(1)).getData(), new byte[0], "multiRead getData of create(empty) in multi");
        eq(((OpResult.GetDataResult) res.get(2)).getData(), null, "multiRead getData of setData(null) in multi");
        // lists are empty, never null
        eq(zk.getChildren(ctx.p("m-null"), false), List.of(), "children of a leaf");
        eq(zk.getACL(ctx.p("m-null"), null), Ids.OPEN_ACL_UNSAFE, "ACL of a null-data node");
    }

    static void containerNodes(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        Stat cs = new Stat();
        String c1 = zk.create(ctx.p("c1"), b("c"), Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER, cs);
        eq(c1, ctx.p("c1"), "container path");
        // ZooKeeper stores containers with owner 0x8000000000000000 but reports 0 to clients
        eq(cs.getEphemeralOwner(), 0L, "container ephemeralOwner as reported to clients");
        String c2 = zk.create(ctx.p("c2"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
        String c3 = zk.create(ctx.p("c3"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
        zk.create(c1 + "/a", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.create(c3 + "/keep", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.create(c3 + "/gone", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.delete(c3 + "/gone", -1);
        // an ephemeral child under a container: the container goes when the session does
        ZooKeeper other = ctx.connect();
        String c4 = zk.create(ctx.p("c4"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
        other.create(c4 + "/e", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        // a container under a container, and a sequential container name
        String c5 = zk.create(ctx.p("c5"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
        zk.create(c5 + "/inner", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);

        Events w = new Events("c1");
        check(zk.exists(c1, w) != null, "c1 exists");
        zk.delete(c1 + "/a", -1);
        other.close();
        w.expect(EventType.NodeDeleted, c1, "container removed after its last child went");
        long deadline = System.currentTimeMillis() + 10000;
        while (zk.exists(c4, false) != null && System.currentTimeMillis() < deadline) {
            sleep(100);
        }
        check(zk.exists(c4, false) == null, "container whose ephemeral child's session closed is removed");
        // a container that never had a child stays; one with children stays;
        // an inner container that never had children keeps the outer one alive
        sleep(1500);
        check(zk.exists(c2, false) != null, "a container that never had children must stay");
        check(zk.exists(c3, false) != null, "a container with a child must stay");
        check(zk.exists(c5 + "/inner", false) != null, "never-used inner container stays");
        // containers cannot be created under ephemerals
        zk.create(ctx.p("eph"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        expectCode(Code.NOCHILDRENFOREPHEMERALS, () -> zk.create(ctx.p("eph", "c"), b(""), Ids.OPEN_ACL_UNSAFE,
            CreateMode.CONTAINER), "container under ephemeral");
        // Op.create with CONTAINER inside multi
        List<OpResult> r = zk.multi(List.of(
            Op.create(ctx.p("mc"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER),
            Op.create(ctx.p("mc", "kid"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)));
        eq(r.size(), 2, "multi results");
        eq(zk.exists(ctx.p("mc"), false).getEphemeralOwner(), 0L, "container created in multi");
        // The watch is set before the child goes: once it has gone, the reaper may remove mc before an exists().
        Events mw = new Events("mc");
        check(zk.exists(ctx.p("mc"), mw) != null, "mc exists");
        zk.delete(ctx.p("mc", "kid"), -1);
        mw.expect(EventType.NodeDeleted, ctx.p("mc"), "container created in a multi is a real container");
    }

    static void ttlNodes(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        Stat ts = new Stat();
        String t1 = zk.create(ctx.p("t1"), b("t"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, ts, 500);
        eq(t1, ctx.p("t1"), "ttl node path");
        // stored as 0xFF00000000000000 | ttl, reported to clients as 0
        eq(ts.getEphemeralOwner(), 0L, "TTL node ephemeralOwner as reported to clients");
        Stat ts2 = new Stat();
        String t2 = zk.create(ctx.p("t2-"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL,
            ts2, 500);
        eq(t2, ctx.p("t2-0000000001"), "sequential TTL node name");
        eq(ts2.getEphemeralOwner(), 0L, "sequential TTL owner");
        String longTtl = zk.create(ctx.p("long"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL,
            new Stat(), 60000);
        String withKid = zk.create(ctx.p("kid"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL,
            new Stat(), 500);
        zk.create(withKid + "/k", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        // TTL nodes can have children and can be created in a multi
        List<OpResult> r = zk.multi(List.of(
            Op.create(ctx.p("mt"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, 60000)));
        eq(r.size(), 1, "multi with TTL create");
        eq(zk.exists(ctx.p("mt"), false).getEphemeralOwner(), 0L, "TTL created in multi");

        Events w = new Events("t1");
        zk.exists(t1, w);
        w.expect(EventType.NodeDeleted, t1, "TTL node deleted after its TTL");
        long deadline = System.currentTimeMillis() + 10000;
        while (zk.exists(t2, false) != null && System.currentTimeMillis() < deadline) {
            sleep(100);
        }
        check(zk.exists(t2, false) == null, "sequential TTL node deleted");
        check(zk.exists(longTtl, false) != null, "a TTL node within its TTL must stay");
        check(zk.exists(withKid, false) != null, "a TTL node with children must stay");
        // ephemeral or sequential-ephemeral with TTL is refused by the client
        // library; a ttl on a non-TTL mode likewise. Both are client-side.
        try {
            zk.create(ctx.p("bad"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 0);
            fail("ttl 0 should be rejected");
        } catch (IllegalArgumentException expected) {
            // client-side validation
        }
    }

    // ------------------------------------------------------------------
    // getAllChildrenNumber, getEphemerals
    // ------------------------------------------------------------------

    static void allChildrenNumber(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        for (String p : new String[] {"a", "a/b", "a/c", "a/b/d", "a/b/d/e", "ab", "z"}) {
            zk.create(ctx.base + "/" + p, b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        }
        eq(zk.getAllChildrenNumber(ctx.base), 7, "all descendants of base");
        eq(zk.getAllChildrenNumber(ctx.p("a")), 4, "descendants of a (not ab)");
        eq(zk.getAllChildrenNumber(ctx.p("a", "b", "d", "e")), 0, "leaf");
        int total = zk.getAllChildrenNumber("/");
        check(total >= 8, "root count includes our nodes: " + total);
        // ephemerals count too
        zk.create(ctx.p("z", "e"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        eq(zk.getAllChildrenNumber(ctx.base), 8, "after ephemeral create");
        expectCode(Code.NONODE, () -> zk.getAllChildrenNumber(ctx.p("missing")), "missing node");
        // async form
        CountDownLatch l = new CountDownLatch(1);
        AtomicInteger n = new AtomicInteger(-1);
        zk.getAllChildrenNumber(ctx.p("a"), (rc, path, c, number) -> {
            n.set(rc == 0 ? number : -100 + rc);
            l.countDown();
        }, null);
        check(l.await(10, TimeUnit.SECONDS), "async callback");
        eq(n.get(), 4, "async getAllChildrenNumber");
    }

    static void getEphemerals(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        ZooKeeper mine = ctx.connect();
        ZooKeeper other = ctx.connect();
        zk.create(ctx.p("sub"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.create(ctx.p("subway"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        mine.create(ctx.p("e1"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        mine.create(ctx.p("e2"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        mine.create(ctx.p("sub", "e3"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        mine.create(ctx.p("subway", "e4"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        String seq = mine.create(ctx.p("s-"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL);
        mine.create(ctx.p("pers"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        other.create(ctx.p("theirs"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);

        Set<String> all = new TreeSet<>(mine.getEphemerals());
        eq(all, new TreeSet<>(List.of(ctx.p("e1"), ctx.p("e2"), ctx.p("sub", "e3"), ctx.p("subway", "e4"), seq)),
            "getEphemerals() lists exactly this session's ephemerals");
        eq(new TreeSet<>(mine.getEphemerals(ctx.p("sub"))),
            new TreeSet<>(List.of(ctx.p("sub", "e3"), ctx.p("subway", "e4"))),
            "getEphemerals(prefix) is a plain string-prefix match");
        eq(new TreeSet<>(mine.getEphemerals(ctx.p("e"))), new TreeSet<>(List.of(ctx.p("e1"), ctx.p("e2"))),
            "getEphemerals(name prefix)");
        eq(mine.getEphemerals(ctx.p("nothing-here")), List.of(), "no match -> empty list");
        eq(zk.getEphemerals(), List.of(), "a session without ephemerals");
        eq(new TreeSet<>(other.getEphemerals("/")), new TreeSet<>(List.of(ctx.p("theirs"))),
            "other session with prefix /");
        // deleted ephemerals disappear from the list
        mine.delete(ctx.p("e1"), -1);
        check(!mine.getEphemerals().contains(ctx.p("e1")), "deleted ephemeral not listed");
    }

    // ------------------------------------------------------------------
    // multi
    // ------------------------------------------------------------------

    static void multiRead(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        zk.create(ctx.p("a"), b("A"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.create(ctx.p("a", "x"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.create(ctx.p("a", "y"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.create(ctx.p("secret"), b("S"), Arrays.asList(new ACL(Perms.WRITE, Ids.ANYONE_ID_UNSAFE)),
            CreateMode.PERSISTENT);
        List<OpResult> res = zk.multi(List.of(
            Op.getData(ctx.p("a")),
            Op.getChildren(ctx.p("a")),
            Op.getData(ctx.p("missing")),
            Op.getChildren(ctx.p("a", "x")),
            Op.getData(ctx.p("secret")),
            Op.getData(ctx.p("a", "y"))));
        eq(res.size(), 6, "multiRead result count");
        check(res.get(0) instanceof OpResult.GetDataResult, "op0 GetDataResult: " + res.get(0));
        OpResult.GetDataResult d0 = (OpResult.GetDataResult) res.get(0);
        eq(d0.getData(), b("A"), "op0 data");
        eq(d0.getStat(), zk.exists(ctx.p("a"), false), "op0 stat");
        check(res.get(1) instanceof OpResult.GetChildrenResult, "op1 GetChildrenResult: " + res.get(1));
        eq(new TreeSet<>(((OpResult.GetChildrenResult) res.get(1)).getChildren()), new TreeSet<>(List.of("x", "y")),
            "op1 children");
        check(res.get(2) instanceof OpResult.ErrorResult, "op2 ErrorResult: " + res.get(2));
        eq(((OpResult.ErrorResult) res.get(2)).getErr(), Code.NONODE.intValue(), "op2 error code");
        eq(((OpResult.GetChildrenResult) res.get(3)).getChildren(), List.of(), "op3 empty children");
        check(res.get(4) instanceof OpResult.ErrorResult, "op4 ErrorResult: " + res.get(4));
        eq(((OpResult.ErrorResult) res.get(4)).getErr(), Code.NOAUTH.intValue(), "op4 NOAUTH");
        check(res.get(5) instanceof OpResult.GetDataResult,
            "a failing read does not abort the later ones (op5): " + res.get(5));
        // async multiRead
        CountDownLatch l = new CountDownLatch(1);
        AtomicReference<Object[]> got = new AtomicReference<>();
        zk.multi(List.of(Op.getData(ctx.p("a"))), (rc, path, c, results) -> {
            got.set(new Object[] {rc, results});
            l.countDown();
        }, null);
        check(l.await(10, TimeUnit.SECONDS), "async multiRead callback");
        eq(got.get()[0], 0, "async multiRead rc");
        // reads and writes cannot be mixed (client-side check)
        try {
            zk.multi(List.of(Op.getData(ctx.p("a")), Op.setData(ctx.p("a"), b("z"), -1)));
            fail("mixed read/write multi must be rejected");
        } catch (IllegalArgumentException expected) {
            // fine
        }
    }

    static void multiErrorResults(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        zk.create(ctx.p("exists"), b("v"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        try {
            zk.multi(List.of(
                Op.create(ctx.p("a"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                Op.setData(ctx.p("exists"), b("w"), -1),
                Op.create(ctx.p("exists"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                Op.delete(ctx.p("exists"), -1),
                Op.check(ctx.p("exists"), 0)));
            fail("multi with a failing op must throw");
        } catch (KeeperException e) {
            eq(e.code(), Code.NODEEXISTS, "multi exception code is the failing op's");
            List<OpResult> rs = e.getResults();
            check(rs != null && rs.size() == 5, "results for all 5 ops: " + rs);
            int[] codes = new int[5];
            for (int i = 0; i < 5; i++) {
                check(rs.get(i) instanceof OpResult.ErrorResult, "op " + i + " ErrorResult: " + rs.get(i));
                codes[i] = ((OpResult.ErrorResult) rs.get(i)).getErr();
            }
            eq(Arrays.toString(codes), Arrays.toString(new int[] {0, 0, Code.NODEEXISTS.intValue(),
                Code.RUNTIMEINCONSISTENCY.intValue(), Code.RUNTIMEINCONSISTENCY.intValue()}),
                "per-op error codes (OK before the failure, RUNTIMEINCONSISTENCY after)");
        }
        eq(zk.exists(ctx.p("a"), false), null, "rolled back");
        eq(s(zk.getData(ctx.p("exists"), false, null)), "v", "set rolled back");
        // successful multi: result types
        List<OpResult> ok = zk.multi(List.of(
            Op.create(ctx.p("b"), b("B"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
            Op.create(ctx.p("s-"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL),
            Op.setData(ctx.p("b"), b("BB"), 0),
            Op.check(ctx.p("b"), 1),
            Op.delete(ctx.p("b"), 1)));
        check(ok.get(0) instanceof OpResult.CreateResult, "CreateResult: " + ok.get(0));
        eq(((OpResult.CreateResult) ok.get(0)).getPath(), ctx.p("b"), "create result path");
        eq(((OpResult.CreateResult) ok.get(1)).getPath(), ctx.p("s-0000000002"),
            "sequential in multi (parent had 2 creates: exists, b)");
        check(ok.get(2) instanceof OpResult.SetDataResult, "SetDataResult: " + ok.get(2));
        eq(((OpResult.SetDataResult) ok.get(2)).getStat().getVersion(), 1, "setData result version");
        check(ok.get(3) instanceof OpResult.CheckResult, "CheckResult: " + ok.get(3));
        check(ok.get(4) instanceof OpResult.DeleteResult, "DeleteResult: " + ok.get(4));
        // the transaction() builder and a NoAuth inside a multi
        zk.create(ctx.p("ro"), b(""), Ids.READ_ACL_UNSAFE, CreateMode.PERSISTENT);
        try {
            zk.transaction().create(ctx.p("c"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)
                .setData(ctx.p("ro"), b("x"), -1).commit();
            fail("NoAuth in multi must throw");
        } catch (KeeperException e) {
            eq(e.code(), Code.NOAUTH, "NoAuth code in multi");
        }
        eq(zk.exists(ctx.p("c"), false), null, "rolled back after NoAuth");
    }

    // ------------------------------------------------------------------
    // persistent watches
    // ------------------------------------------------------------------

    static void persistentWatch(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        ZooKeeper w = ctx.connect();
        String n = ctx.p("n");
        zk.create(n, b("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        Events ev = new Events("persistent");
        w.addWatch(n, ev, AddWatchMode.PERSISTENT);
        zk.setData(n, b("1"), -1);
        ev.expect(EventType.NodeDataChanged, n, "first set");
        zk.setData(n, b("2"), -1);
        ev.expect(EventType.NodeDataChanged, n, "second set (persistent watch keeps firing)");
        zk.create(n + "/c", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        ev.expect(EventType.NodeChildrenChanged, n, "child created");
        zk.setData(n + "/c", b("x"), -1);
        zk.create(n + "/c/gc", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.delete(n + "/c/gc", -1);
        zk.delete(n + "/c", -1);
        ev.expect(EventType.NodeChildrenChanged, n, "child deleted (child data / grandchildren do not fire)");
        zk.delete(n, -1);
        ev.expect(EventType.NodeDeleted, n, "node deleted");
        zk.create(n, b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        ev.expect(EventType.NodeCreated, n, "re-created (persistent watch survives deletion)");
        // a persistent watch on a node that does not exist yet
        Events ev2 = new Events("missing");
        w.addWatch(ctx.p("later"), ev2, AddWatchMode.PERSISTENT);
        zk.create(ctx.p("later"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        ev2.expect(EventType.NodeCreated, ctx.p("later"), "persistent watch on missing node");
        // a one-shot watch (another session) alongside the persistent watch:
        // both fire, the one-shot only once. (Apache ZooKeeper 3.8.0 loses a
        // persistent watch when a one-shot watch of the SAME session on the
        // same path fires, ZOOKEEPER-4466; that case is deliberately not
        // tested.)
        ZooKeeper w2 = ctx.connect();
        Events once = new Events("once");
        w2.getData(n, once, null);
        zk.setData(n, b("a"), -1);
        ev.expect(EventType.NodeDataChanged, n, "persistent alongside one-shot");
        once.expect(EventType.NodeDataChanged, n, "one-shot alongside persistent");
        zk.setData(n, b("b"), -1);
        ev.expect(EventType.NodeDataChanged, n, "persistent again");
        w2.exists(n, false);
        w.exists(n, false);
        once.expectNone("one-shot fired twice");
        ev.expectNone("extra persistent events");
        // visible to the server's watch listing
        String wchp = fourLetter(ctx.hosts, "wchp");
        check(wchp.contains(n), "wchp lists the persistent watch on " + n + ":\n" + wchp);
    }

    static void persistentRecursiveWatch(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        ZooKeeper w = ctx.connect();
        String r = ctx.p("r");
        zk.create(r, b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        Events ev = new Events("recursive");
        w.addWatch(r, ev, AddWatchMode.PERSISTENT_RECURSIVE);
        zk.create(r + "/a", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        ev.expect(EventType.NodeCreated, r + "/a", "child created (NodeCreated for the child, not "
            + "NodeChildrenChanged)");
        zk.create(r + "/a/b", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        ev.expect(EventType.NodeCreated, r + "/a/b", "grandchild created");
        zk.setData(r + "/a/b", b("x"), -1);
        ev.expect(EventType.NodeDataChanged, r + "/a/b", "grandchild data");
        zk.setData(r + "/a/b", b("y"), -1);
        ev.expect(EventType.NodeDataChanged, r + "/a/b", "grandchild data again");
        zk.setData(r, b("root"), -1);
        ev.expect(EventType.NodeDataChanged, r, "the watched node itself");
        zk.multi(List.of(
            Op.create(r + "/m1", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
            Op.delete(r + "/a/b", -1)));
        WatchedEvent e1 = ev.next("multi event 1");
        WatchedEvent e2 = ev.next("multi event 2");
        eq(e1.getType() + " " + e1.getPath() + ", " + e2.getType() + " " + e2.getPath(),
            "NodeCreated " + r + "/m1, NodeDeleted " + r + "/a/b", "multi events in op order");
        zk.delete(r + "/a", -1);
        ev.expect(EventType.NodeDeleted, r + "/a", "child deleted");
        // nodes outside the subtree (sibling with the same name prefix) do not fire
        zk.create(r + "x", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.setData(ctx.base, b("base"), -1);
        // ephemeral child of another session, then its session closes
        ZooKeeper other = ctx.connect();
        other.create(r + "/eph", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        ev.expect(EventType.NodeCreated, r + "/eph", "ephemeral created");
        other.close();
        ev.expect(EventType.NodeDeleted, r + "/eph", "ephemeral removed by session close");
        w.exists(r, false);
        for (WatchedEvent e : ev.all) {
            check(e.getType() != EventType.NodeChildrenChanged,
                "a recursive watch never delivers NodeChildrenChanged: " + ev.all);
            check(e.getPath().equals(r) || e.getPath().startsWith(r + "/"),
                "event outside the watched subtree: " + e);
        }
        ev.expectNone("extra recursive events");
        // a recursive watch on the root sees our changes too
        ZooKeeper w2 = ctx.connect();
        Events rootEv = new Events("root-recursive");
        w2.addWatch("/", rootEv, AddWatchMode.PERSISTENT_RECURSIVE);
        zk.setData(r, b("again"), -1);
        long deadline = System.currentTimeMillis() + 10000;
        boolean seen = false;
        while (!seen && System.currentTimeMillis() < deadline) {
            WatchedEvent e = rootEv.queue.poll(200, TimeUnit.MILLISECONDS);
            seen = e != null && e.getType() == EventType.NodeDataChanged && e.getPath().equals(r);
        }
        check(seen, "recursive watch on / sees a deep change");
    }

    static void removeWatches(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        ZooKeeper w = ctx.connect();
        String n = ctx.p("n");
        zk.create(n, b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        // remove one data watcher: it gets DataWatchRemoved, and no further events
        Events d1 = new Events("d1");
        Events d2 = new Events("d2");
        w.getData(n, d1, null);
        w.exists(n, d2);
        w.removeWatches(n, d1, Watcher.WatcherType.Data, false);
        d1.expect(EventType.DataWatchRemoved, n, "removed watcher is told");
        zk.setData(n, b("x"), -1);
        d2.expect(EventType.NodeDataChanged, n, "remaining watcher still fires");
        w.exists(n, false);
        d1.expectNone("removed watcher fired");
        // removing a watcher that is not registered: NoWatcherException
        Events never = new Events("never");
        expectCode(Code.NOWATCHER, () -> {
            w.removeWatches(n, never, Watcher.WatcherType.Data, false);
            return null;
        }, "remove unknown watcher");
        expectCode(Code.NOWATCHER, () -> {
            w.removeAllWatches(ctx.p("nowatch"), Watcher.WatcherType.Any, false);
            return null;
        }, "removeAllWatches on a path without watches");
        // removeAllWatches: both kinds, server forgets them
        Events c1 = new Events("c1");
        Events d3 = new Events("d3");
        w.getChildren(n, c1);
        w.getData(n, d3, null);
        String before = fourLetter(ctx.hosts, "wchp");
        check(before.contains(n), "server lists the watches before removal:\n" + before);
        w.removeAllWatches(n, Watcher.WatcherType.Children, false);
        c1.expect(EventType.ChildWatchRemoved, n, "child watch removed");
        zk.create(n + "/kid", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        w.exists(n, false);
        c1.expectNone("removed child watcher fired");
        w.removeAllWatches(n, Watcher.WatcherType.Any, false);
        d3.expect(EventType.DataWatchRemoved, n, "data watch removed by Any");
        zk.setData(n, b("y"), -1);
        w.exists(n, false);
        d3.expectNone("removed data watcher fired");
        String after = fourLetter(ctx.hosts, "wchp");
        check(!after.lines().anyMatch(l -> l.equals(n)), "server still lists a watch on " + n + ":\n" + after);
        // persistent watches can be removed with WatcherType.Any
        Events p = new Events("persistent");
        w.addWatch(n, p, AddWatchMode.PERSISTENT);
        w.removeWatches(n, p, Watcher.WatcherType.Any, false);
        WatchedEvent removed = p.next("persistent watch removal event");
        check(removed.getType() == EventType.PersistentWatchRemoved
                || removed.getType() == EventType.DataWatchRemoved
                || removed.getType() == EventType.ChildWatchRemoved,
            "removal event for a persistent watch: " + removed);
        // drain: a persistent watch may report removal per watch table
        sleep(100);
        p.queue.clear();
        zk.setData(n, b("z"), -1);
        w.exists(n, false);
        for (WatchedEvent e : new ArrayList<>(p.queue)) {
            check(e.getType() != EventType.NodeDataChanged, "removed persistent watch fired: " + e);
        }
        // local removal (no server round trip) works even with the server up
        Events loc = new Events("local");
        w.getData(n, loc, null);
        w.removeWatches(n, loc, Watcher.WatcherType.Data, true);
        loc.expect(EventType.DataWatchRemoved, n, "local removal");
    }

    // ------------------------------------------------------------------
    // whoAmI, ACLs
    // ------------------------------------------------------------------

    static void whoAmI(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.connect();
        List<ClientInfo> infos = zk.whoAmI();
        eq(infos.size(), 1, "whoAmI entries for an unauthenticated session: " + infos);
        eq(infos.get(0).getAuthScheme(), "ip", "auth scheme");
        eq(infos.get(0).getUser(), "127.0.0.1", "ip user");
        zk.addAuthInfo("digest", b(USER + ":" + PASS));
        zk.addAuthInfo("digest", b("second:pw"));
        List<ClientInfo> after = zk.whoAmI();
        Set<String> got = new TreeSet<>();
        for (ClientInfo ci : after) {
            got.add(ci.getAuthScheme() + ":" + ci.getUser());
        }
        eq(got, new TreeSet<>(List.of("ip:127.0.0.1", "digest:" + USER, "digest:second")),
            "whoAmI after two digest add_auths");
    }

    static void aclWithStat(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        String n = ctx.p("n");
        zk.create(n, b("d"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        Stat st = new Stat();
        List<ACL> acl = zk.getACL(n, st);
        eq(acl, Ids.OPEN_ACL_UNSAFE, "default ACL");
        eq(st.getAversion(), 0, "aversion before");
        String digest = DigestAuthenticationProvider.generateDigest(USER + ":" + PASS);
        List<ACL> newAcl = Arrays.asList(new ACL(Perms.READ, Ids.ANYONE_ID_UNSAFE),
            new ACL(Perms.ALL, new Id("digest", digest)));
        Stat st2 = zk.setACL(n, newAcl, 0);
        eq(st2.getAversion(), 1, "setACL returns aversion 1");
        eq(st2.getVersion(), 0, "data version unchanged");
        eq(st2.getMzxid(), st.getMzxid(), "mzxid unchanged by setACL");
        // the ADMIN permission is checked before the version
        expectCode(Code.NOAUTH, () -> zk.setACL(n, Ids.OPEN_ACL_UNSAFE, 0),
            "setACL without ADMIN and with a stale aversion");
        // READ-only caller: digest hash is hidden
        Stat st3 = new Stat();
        List<ACL> seen = zk.getACL(n, st3);
        eq(st3, st2, "getACL fills the stat");
        Set<String> ids = new TreeSet<>();
        for (ACL a : seen) {
            ids.add(a.getPerms() + ":" + a.getId().getScheme() + ":" + a.getId().getId());
        }
        eq(ids, new TreeSet<>(List.of(Perms.READ + ":world:anyone", Perms.ALL + ":digest:" + USER + ":x")),
            "digest redacted for non-ADMIN");
        ZooKeeper u = ctx.connect();
        u.addAuthInfo("digest", b(USER + ":" + PASS));
        List<ACL> full = u.getACL(n, null);
        check(full.contains(new ACL(Perms.ALL, new Id("digest", digest))), "ADMIN sees digest: " + full);
        expectCode(Code.BADVERSION, () -> u.setACL(n, Ids.OPEN_ACL_UNSAFE, 0), "setACL stale aversion");
        eq(u.setACL(n, Ids.OPEN_ACL_UNSAFE, -1).getAversion(), 2, "setACL version -1");
        // CREATOR_ALL_ACL needs an authenticated identity
        expectCode(Code.INVALIDACL, () -> zk.create(ctx.p("creator"), b(""), Ids.CREATOR_ALL_ACL,
            CreateMode.PERSISTENT), "CREATOR_ALL_ACL without auth");
        String c = u.create(ctx.p("creator"), b(""), Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
        eq(u.getACL(c, null), List.of(new ACL(Perms.ALL, new Id("digest", digest))),
            "CREATOR_ALL_ACL expands to the creator's digest");
        expectCode(Code.NOAUTH, () -> zk.getData(c, false, null), "other session on creator node");
        expectCode(Code.NOAUTH, () -> zk.getACL(c, null), "getACL needs READ or ADMIN");
        expectCode(Code.INVALIDACL, () -> zk.setACL(n, new ArrayList<>(), -1), "empty ACL list");
        expectCode(Code.NONODE, () -> zk.getACL(ctx.p("missing"), null), "getACL missing");
        // super user (configured as super:super on the compat servers) bypasses ACLs
        ZooKeeper sup = ctx.connect();
        sup.addAuthInfo("digest", b("super:super"));
        eq(s(sup.getData(c, false, null)), "", "super user reads a node it has no ACL on");
    }

    // ------------------------------------------------------------------
    // async pipelining, ordering
    // ------------------------------------------------------------------

    static void asyncPipelinedFifo(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        final int n = 200;
        List<String> order = Collections.synchronizedList(new ArrayList<>());
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch done = new CountDownLatch(n);
        for (int i = 0; i < n; i++) {
            final int idx = i;
            zk.create(ctx.p("n" + i), b("v" + i), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
                (AsyncCallback.StringCallback) (rc, path, c, name) -> {
                    order.add(String.valueOf(c));
                    if (rc != 0 || !name.equals(ctx.p("n" + idx))) {
                        errors.add("create " + idx + " rc=" + rc + " name=" + name);
                    }
                    done.countDown();
                }, idx);
        }
        check(done.await(30, TimeUnit.SECONDS), "all 200 callbacks (got " + order.size() + ")");
        check(errors.isEmpty(), "async create errors: " + errors);
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            expected.add(String.valueOf(i));
        }
        eq(order, expected, "callbacks in request order (FIFO)");
        // mixed pipeline: sequential creates, sets and reads interleaved
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch d2 = new CountDownLatch(300);
        zk.create(ctx.p("q"), b("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        for (int i = 0; i < 100; i++) {
            final int idx = i;
            zk.setData(ctx.p("q"), b(String.valueOf(i + 1)), i, (rc, path, c, stat) -> {
                log.add("set" + idx + ":" + rc + ":" + (stat == null ? -1 : stat.getVersion()));
                d2.countDown();
            }, null);
            zk.getData(ctx.p("q"), false, (rc, path, c, data, stat) -> {
                log.add("get" + idx + ":" + rc + ":" + s(data));
                d2.countDown();
            }, null);
            zk.create(ctx.p("q", "s-"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL,
                (AsyncCallback.StringCallback) (rc, path, c, name) -> {
                    log.add("seq" + idx + ":" + rc + ":" + name.substring(name.length() - 10));
                    d2.countDown();
                }, null);
        }
        check(d2.await(30, TimeUnit.SECONDS), "mixed pipeline callbacks");
        List<String> exp2 = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            exp2.add("set" + i + ":0:" + (i + 1));
            exp2.add("get" + i + ":0:" + (i + 1));
            exp2.add("seq" + i + ":0:" + String.format("%010d", i));
        }
        eq(log, exp2, "mixed pipeline: FIFO and read-your-writes");
    }

    static void watchBeforeAsyncResponse(Ctx ctx) throws Exception {
        // The Java client delivers watch events and async callbacks on one
        // event thread in arrival order, so the log below shows exactly the
        // order in which the server sent them.
        ZooKeeper writer = ctx.admin();
        ZooKeeper reader = ctx.connect();
        String n = ctx.p("n");
        writer.create(n, b("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        for (int i = 1; i <= 25; i++) {
            List<String> log = Collections.synchronizedList(new ArrayList<>());
            Events w = new Events("w", log);
            reader.getData(n, w, null);
            final String val = String.valueOf(i);
            Thread t = new Thread(() -> {
                try {
                    writer.setData(n, b(val), -1);
                } catch (Exception e) {
                    log.add("writer-error:" + e);
                }
            });
            t.start();
            long deadline = System.currentTimeMillis() + 10000;
            boolean seen = false;
            while (!seen) {
                CountDownLatch l = new CountDownLatch(1);
                AtomicReference<String> data = new AtomicReference<>();
                reader.getData(n, false, (rc, path, c, d, stat) -> {
                    data.set(s(d));
                    if (val.equals(s(d))) {
                        log.add("response-with-new-data");
                    }
                    l.countDown();
                }, null);
                check(l.await(10, TimeUnit.SECONDS), "getData callback");
                seen = val.equals(data.get());
                check(System.currentTimeMillis() < deadline, "never saw the new value " + val);
            }
            t.join(10000);
            check(!log.isEmpty() && log.get(0).startsWith("event:w:NodeDataChanged"),
                "iteration " + i + ": the watch event must precede the first response showing the change; log="
                    + log);
        }
        // child watch vs. getChildren response
        for (int i = 0; i < 10; i++) {
            List<String> log = Collections.synchronizedList(new ArrayList<>());
            Events w = new Events("c", log);
            reader.getChildren(ctx.base, w);
            String kid = "k" + i;
            writer.create(ctx.p(kid), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            boolean seen = false;
            while (!seen) {
                CountDownLatch l = new CountDownLatch(1);
                AtomicReference<List<String>> kids = new AtomicReference<>();
                reader.getChildren(ctx.base, false, (rc, path, c, children) -> {
                    kids.set(children);
                    if (children != null && children.contains(kid)) {
                        log.add("response-with-child");
                    }
                    l.countDown();
                }, null);
                check(l.await(10, TimeUnit.SECONDS), "getChildren callback");
                seen = kids.get() != null && kids.get().contains(kid);
            }
            check(log.get(0).startsWith("event:c:NodeChildrenChanged"),
                "child iteration " + i + ": event must precede the response; log=" + log);
        }
    }

    // ------------------------------------------------------------------
    // sessions
    // ------------------------------------------------------------------

    static void sessionReattach(Ctx ctx) throws Exception {
        ZooKeeper admin = ctx.admin();
        String e = ctx.p("e");
        try (Relay relay = new Relay(ctx.hosts.split(",")[0])) {
            // the first client reaches the server through a relay, so the check
            // can take it away without closing its session
            StateWatcher sw1 = new StateWatcher(null);
            ZooKeeper zk1 = new ZooKeeper(relay.address(), 10000, sw1);
            ctx.clients.add(zk1);
            check(sw1.await(Set.of(KeeperState.SyncConnected), 20000) != null, "connect via relay");
            zk1.create(e, b("mine"), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            long sid = zk1.getSessionId();
            byte[] pw = zk1.getSessionPasswd();
            eq(pw.length, 16, "session password length");
            relay.cutAndPause();
            check(sw1.await(Set.of(KeeperState.Disconnected), 10000) != null, "first client disconnected");

            // re-attach from a second client object with id and password
            StateWatcher sw = new StateWatcher(null);
            ZooKeeper zk2 = new ZooKeeper(ctx.hosts, 10000, sw, sid, pw);
            ctx.clients.add(zk2);
            check(sw.await(Set.of(KeeperState.SyncConnected), 20000) != null, "re-attach connects");
            eq(zk2.getSessionId(), sid, "same session id");
            eq(zk2.getEphemerals(), List.of(e), "re-attached session owns the ephemeral");
            eq(s(zk2.getData(e, false, null)), "mine", "data visible");
            eq(admin.exists(e, false).getEphemeralOwner(), sid, "owner");
            zk2.create(ctx.p("e2"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            eq(admin.exists(ctx.p("e2"), false).getEphemeralOwner(), sid, "new ephemeral under the same session");

            // wrong password: the session is reported expired, and the real
            // session is unaffected
            byte[] bad = pw.clone();
            bad[0] ^= 0x55;
            StateWatcher bw = new StateWatcher(null);
            ZooKeeper zk3 = new ZooKeeper(ctx.hosts, 10000, bw, sid, bad);
            ctx.clients.add(zk3);
            eq(bw.await(Set.of(KeeperState.Expired, KeeperState.SyncConnected), 20000), KeeperState.Expired,
                "wrong password -> Expired");
            // unknown session id: expired as well
            StateWatcher uw = new StateWatcher(null);
            ZooKeeper zk4 = new ZooKeeper(ctx.hosts, 10000, uw, sid ^ 0x5a5a5aL, pw);
            ctx.clients.add(zk4);
            eq(uw.await(Set.of(KeeperState.Expired, KeeperState.SyncConnected), 20000), KeeperState.Expired,
                "unknown session id -> Expired");
            check(admin.exists(e, false) != null, "ephemeral survives the failed attempts");
            // (Apache ZooKeeper drops the session's current connection as soon as
            // a reconnect for it arrives, even one with a wrong password; the
            // client then reconnects by itself, so allow for connection loss.)
            long until = System.currentTimeMillis() + 15000;
            while (true) {
                try {
                    eq(s(zk2.getData(e, false, null)), "mine", "re-attached client still works");
                    break;
                } catch (KeeperException.ConnectionLossException cle) {
                    check(System.currentTimeMillis() < until, "re-attached client did not recover: " + cle);
                    sleep(100);
                }
            }

            // closing the re-attached client closes the session: ephemerals go
            Events gone = new Events("gone");
            admin.exists(e, gone);
            zk2.close();
            gone.expect(EventType.NodeDeleted, e, "ephemeral removed on close of the re-attached session");
            check(admin.exists(ctx.p("e2"), false) == null, "second ephemeral gone too");
            // the first client object comes back to a closed session: Expired
            relay.resume();
            eq(sw1.await(Set.of(KeeperState.Expired, KeeperState.SyncConnected), 20000), KeeperState.Expired,
                "original client reconnecting to a closed session");
        }
    }

    /** A TCP relay the check can cut and pause to force a client reconnect. */
    static final class Relay implements AutoCloseable {
        final ServerSocket listener;
        final InetSocketAddress target;
        final List<Socket> open = new CopyOnWriteArrayList<>();
        volatile boolean paused;
        volatile boolean closed;
        final Thread acceptor;

        Relay(String hostPort) throws IOException {
            int colon = hostPort.lastIndexOf(':');
            target = new InetSocketAddress(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
            listener = new ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"));
            acceptor = new Thread(this::acceptLoop, "relay-accept");
            acceptor.setDaemon(true);
            acceptor.start();
        }

        String address() {
            return "127.0.0.1:" + listener.getLocalPort();
        }

        void acceptLoop() {
            while (!closed) {
                try {
                    Socket client = listener.accept();
                    if (paused) {
                        client.close();
                        continue;
                    }
                    Socket server = new Socket();
                    server.connect(target, 5000);
                    open.add(client);
                    open.add(server);
                    pump(client, server);
                    pump(server, client);
                } catch (IOException e) {
                    if (closed) {
                        return;
                    }
                }
            }
        }

        void pump(Socket from, Socket to) {
            Thread t = new Thread(() -> {
                byte[] buf = new byte[65536];
                try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                    int r;
                    while ((r = in.read(buf)) > 0) {
                        out.write(buf, 0, r);
                        out.flush();
                    }
                } catch (IOException ignored) {
                    // connection cut
                } finally {
                    try {
                        from.close();
                        to.close();
                    } catch (IOException ignored) {
                        // ignore
                    }
                }
            }, "relay-pump");
            t.setDaemon(true);
            t.start();
        }

        void cutAndPause() throws IOException {
            paused = true;
            for (Socket s : open) {
                s.close();
            }
            open.clear();
        }

        void resume() {
            paused = false;
        }

        @Override
        public void close() throws IOException {
            closed = true;
            listener.close();
            for (Socket s : open) {
                s.close();
            }
        }
    }

    static void setWatchesOnReconnect(Ctx ctx) throws Exception {
        ZooKeeper admin = ctx.admin();
        String hostPort = ctx.hosts.split(",")[0];
        String d = ctx.p("data");
        String c = ctx.p("created");
        String k = ctx.p("kids");
        String same = ctx.p("unchanged");
        String pw = ctx.p("persist");
        admin.create(d, b("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        admin.create(k, b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        admin.create(same, b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        admin.create(pw, b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        try (Relay relay = new Relay(hostPort)) {
            StateWatcher sw = new StateWatcher(null);
            ZooKeeper zk = new ZooKeeper(relay.address(), 10000, sw);
            ctx.clients.add(zk);
            check(sw.await(Set.of(KeeperState.SyncConnected), 20000) != null, "connect through relay");
            long sid = zk.getSessionId();
            Events wd = new Events("data");
            Events wc = new Events("exists");
            Events wk = new Events("children");
            Events ws = new Events("unchanged");
            Events wp = new Events("persistent");
            Events wr = new Events("recursive");
            zk.getData(d, wd, null);
            check(zk.exists(c, wc) == null, "created node missing at first");
            zk.getChildren(k, wk);
            zk.getData(same, ws, null);
            zk.addWatch(pw, wp, AddWatchMode.PERSISTENT);
            zk.addWatch(k, wr, AddWatchMode.PERSISTENT_RECURSIVE);

            relay.cutAndPause();
            check(sw.await(Set.of(KeeperState.Disconnected), 10000) != null, "client notices the cut");
            // changes while the client is away
            admin.setData(d, b("1"), -1);
            admin.create(c, b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            admin.create(k + "/new", b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            admin.setData(pw, b("p"), -1);
            relay.resume();
            check(sw.await(Set.of(KeeperState.SyncConnected), 20000) != null, "client reconnects");
            eq(zk.getSessionId(), sid, "same session after reconnect");
            // SetWatches with the last seen zxid makes the server fire the
            // watches whose nodes changed while the client was away
            wd.expect(EventType.NodeDataChanged, d, "data watch fired on reconnect");
            wc.expect(EventType.NodeCreated, c, "exists watch fired on reconnect");
            wk.expect(EventType.NodeChildrenChanged, k, "child watch fired on reconnect");
            // persistent and recursive watches are re-registered by SetWatches2;
            // Apache ZooKeeper 3.8 does not replay changes missed while away for
            // them (it may or may not here), but they must stay active
            zk.exists(ctx.base, false);
            sleep(200);
            wp.queue.clear();
            ws.expectNone("unchanged node's watch must not fire on reconnect");
            admin.setData(same, b("now"), -1);
            ws.expect(EventType.NodeDataChanged, same, "re-registered watch still works after reconnect");
            admin.setData(pw, b("q"), -1);
            wp.expect(EventType.NodeDataChanged, pw, "persistent watch still active");
            wr.queue.clear();
            admin.setData(k + "/new", b("deep"), -1);
            WatchedEvent re;
            do {
                re = wr.next("recursive watch after reconnect");
            } while (!(re.getType() == EventType.NodeDataChanged && (k + "/new").equals(re.getPath())));
        }
    }

    static void closeSessionEphemerals(Ctx ctx) throws Exception {
        ZooKeeper admin = ctx.admin();
        ZooKeeper zk = ctx.connect();
        for (int i = 0; i < 20; i++) {
            zk.create(ctx.p("e" + i), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        }
        admin.create(ctx.p("sub"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.create(ctx.p("sub", "e"), b(""), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        Events w = new Events("w");
        admin.exists(ctx.p("e0"), w);
        admin.exists(ctx.p("e19"), w);
        admin.getChildren(ctx.p("sub"), w);
        Stat before = admin.exists(ctx.base, false);
        zk.close();
        // after close returns, every ephemeral is gone for everyone
        eq(admin.getChildren(ctx.base, false).size(), 1, "only the persistent child remains");
        eq(admin.getChildren(ctx.p("sub"), false), List.of(), "nested ephemeral gone");
        Set<String> got = new HashSet<>();
        for (int i = 0; i < 3; i++) {
            WatchedEvent e = w.next("close events");
            got.add(e.getType() + " " + e.getPath());
        }
        eq(new TreeSet<>(got), new TreeSet<>(List.of("NodeDeleted " + ctx.p("e0"), "NodeDeleted " + ctx.p("e19"),
            "NodeChildrenChanged " + ctx.p("sub"))), "events for the closed session's ephemerals");
        Stat after = admin.exists(ctx.base, false);
        eq(after.getCversion(), before.getCversion() + 20, "parent cversion: one per removed ephemeral");
        check(after.getPzxid() > before.getPzxid(), "parent pzxid moved");
        // all ephemerals of a session go in a single transaction: one zxid
        Stat sub = admin.exists(ctx.p("sub"), false);
        eq(sub.getPzxid(), after.getPzxid(), "same zxid for all deletions of the close");
        // the closed session cannot be used
        try {
            zk.exists(ctx.base, false);
            fail("a closed client must refuse requests");
        } catch (KeeperException e) {
            check(e.code() == Code.SESSIONEXPIRED || e.code() == Code.CONNECTIONLOSS, "closed client: " + e.code());
        }
    }

    // ------------------------------------------------------------------
    // reads
    // ------------------------------------------------------------------

    static void getChildrenStatAndData(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        String p = ctx.p("p");
        zk.create(p, b("pd"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        for (String kid : new String[] {"b", "a", "c"}) {
            zk.create(p + "/" + kid, b(kid), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        }
        Stat st = new Stat();
        List<String> kids = zk.getChildren(p, false, st);
        eq(new TreeSet<>(kids), new TreeSet<>(List.of("a", "b", "c")), "children");
        eq(st, zk.exists(p, false), "getChildren2 stat is the parent's");
        eq(st.getNumChildren(), 3, "numChildren");
        Stat ds = new Stat();
        eq(zk.getData(p + "/a", false, ds), b("a"), "data");
        eq(ds.getDataLength(), 1, "dataLength");
        // async children2
        CountDownLatch l = new CountDownLatch(1);
        AtomicReference<Stat> as = new AtomicReference<>();
        zk.getChildren(p, false, (rc, path, c, children, stat) -> {
            as.set(stat);
            l.countDown();
        }, null);
        check(l.await(10, TimeUnit.SECONDS), "async children2 callback");
        eq(as.get(), st, "async children2 stat");
        // async exists on a missing node: NONODE rc and null stat
        CountDownLatch l2 = new CountDownLatch(1);
        AtomicReference<Object[]> ex = new AtomicReference<>();
        zk.exists(ctx.p("missing"), false, (rc, path, c, stat) -> {
            ex.set(new Object[] {rc, stat});
            l2.countDown();
        }, null);
        check(l2.await(10, TimeUnit.SECONDS), "async exists callback");
        eq(ex.get()[0], Code.NONODE.intValue(), "async exists rc on missing node");
        eq(ex.get()[1], null, "async exists stat on missing node");
        // sync
        CountDownLatch l3 = new CountDownLatch(1);
        AtomicReference<Object[]> sy = new AtomicReference<>();
        zk.sync(p, (rc, path, c) -> {
            sy.set(new Object[] {rc, path});
            l3.countDown();
        }, null);
        check(l3.await(10, TimeUnit.SECONDS), "sync callback");
        eq(sy.get()[0], 0, "sync rc");
        eq(sy.get()[1], p, "sync path");
        // large data round trip and many children
        byte[] big = new byte[900 * 1024];
        for (int i = 0; i < big.length; i++) {
            big[i] = (byte) (i * 31);
        }
        zk.setData(p, big, -1);
        eq(zk.getData(p, false, null), big, "900 KiB data round trip");
    }

    // ------------------------------------------------------------------
    // zkCli
    // ------------------------------------------------------------------

    static void zkCli(Ctx ctx) throws Exception {
        ZooKeeper zk = ctx.admin();
        String zkcli = System.getenv().getOrDefault("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh");
        check(new File(zkcli).canExecute() || new File(zkcli).exists(), "zkCli not found at " + zkcli);
        String b = ctx.base;
        String script = String.join("\n",
            "create " + b + "/cli \"hello\"",
            "create " + b + "/cli/a",
            "create " + b + "/cli/b bdata",
            "create -e " + b + "/cli/eph",
            "create -s " + b + "/cli/s- sq",
            "ls " + b + "/cli",
            "get " + b + "/cli",
            "set " + b + "/cli world",
            "stat " + b + "/cli",
            "get -s " + b + "/cli/b",
            "create " + b + "/cli",
            "get " + b + "/missing",
            "delete " + b + "/cli",
            "set -v 7 " + b + "/cli x",
            "delete " + b + "/cli/a",
            "getAllChildrenNumber " + b,
            "getEphemerals " + b,
            "whoami",
            "deleteall " + b + "/cli",
            "ls " + b,
            "quit", "");
        ProcessBuilder pb = new ProcessBuilder(zkcli, "-server", ctx.hosts);
        pb.redirectErrorStream(true);
        pb.environment().put("ZOO_LOG_DIR", System.getProperty("java.io.tmpdir"));
        Process proc = pb.start();
        proc.getOutputStream().write(b(script));
        proc.getOutputStream().close();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Thread reader = new Thread(() -> {
            try {
                proc.getInputStream().transferTo(out);
            } catch (IOException ignored) {
                // process gone
            }
        });
        reader.start();
        if (!proc.waitFor(40, TimeUnit.SECONDS)) {
            proc.destroyForcibly();
            fail("zkCli did not finish in 40 s; output:\n" + out);
        }
        reader.join(5000);
        String text = out.toString(StandardCharsets.UTF_8);
        String[] expectLines = {
            "Created " + b + "/cli",
            "Created " + b + "/cli/a",
            "Created " + b + "/cli/eph",
            "Created " + b + "/cli/s-0000000003",
            "[a, b, eph, s-0000000003]",
            "hello",
            "dataVersion = 1",
            "dataLength = 5",
            "numChildren = 4",
            "cversion = 4",
            "aclVersion = 0",
            "ephemeralOwner = 0x0",
            "bdata",
            "Node already exists: " + b + "/cli",
            "Node does not exist: " + b + "/missing",
            "Node not empty: " + b + "/cli",
            "version No is not valid : " + b + "/cli",
            "4",
            "ip: 127.0.0.1",
            "[" + b + "/cli/eph]",
            "[]",
        };
        List<String> lines = text.lines().map(String::trim).toList();
        for (String want : expectLines) {
            check(lines.contains(want), "zkCli output lacks the line \"" + want + "\"; full output:\n" + text);
        }
        check(text.contains("cZxid = 0x") && text.contains("mZxid = 0x") && text.contains("pZxid = 0x"),
            "stat output fields:\n" + text);
        // ls output order: zkCli sorts children
        check(zk.exists(b + "/cli", false) == null, "deleteall removed the subtree");
    }

    // ------------------------------------------------------------------
    // main
    // ------------------------------------------------------------------

    /** The line that ends each check's output in --serve mode: "@@check-done NAME PASS|FAIL". */
    static final String DONE_MARKER = "@@check-done";

    /** When the running check's time is up (System.nanoTime()); Long.MAX_VALUE while none runs. */
    static volatile long checkDeadline = Long.MAX_VALUE;

    public static void main(String[] args) throws IOException {
        if (args.length == 1 && args[0].equals("--list")) {
            for (String name : CHECKS.keySet()) {
                System.out.println(name);
            }
            System.exit(0);
        }
        if (args.length != 2) {
            System.err.println("usage: ZkChecks HOST:PORT CHECKNAME|all|--serve | ZkChecks --list");
            System.exit(1);
        }
        String hosts = args[0];
        long timeoutS = Long.parseLong(System.getenv().getOrDefault("ZKCHECKS_TIMEOUT_S", "55"));
        startWatchdog();
        if (args[1].equals("--serve")) {
            serve(hosts, timeoutS);
            return;
        }
        List<String> names = args[1].equals("all") ? new ArrayList<>(CHECKS.keySet()) : List.of(args[1]);
        for (String n : names) {
            if (!CHECKS.containsKey(n)) {
                System.out.println("unknown check " + n + "; use --list");
                System.exit(1);
            }
        }
        boolean ok = true;
        for (String name : names) {
            ok &= runCheck(hosts, name, timeoutS);
        }
        System.out.flush();
        Runtime.getRuntime().halt(ok ? 0 : 1);
    }

    /**
     * One JVM for many checks (the test suite starts one per target instead of one per check): reads a check name per
     * line from stdin, runs it as the single-check mode does, and ends its output with DONE_MARKER. Each check still
     * has its own watchdog window; a hung check halts the JVM, and the caller starts a new one for the next check.
     */
    static void serve(String hosts, long timeoutS) throws IOException {
        java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8));
        String name;
        while ((name = in.readLine()) != null) {
            name = name.trim();
            if (name.isEmpty()) {
                continue;
            }
            boolean ok;
            if (CHECKS.containsKey(name)) {
                ok = runCheck(hosts, name, timeoutS);
            } else {
                System.out.println("unknown check " + name + "; use --list");
                ok = false;
            }
            System.out.println(DONE_MARKER + " " + name + " " + (ok ? "PASS" : "FAIL"));
            System.out.flush();
        }
        Runtime.getRuntime().halt(0);
    }

    /** Runs one check under the watchdog and prints PASS or FAIL with the reason. */
    static boolean runCheck(String hosts, String name, long timeoutS) {
        long t0 = System.nanoTime();
        checkDeadline = t0 + timeoutS * 1_000_000_000L;
        try (Ctx ctx = new Ctx(hosts, name)) {
            CHECKS.get(name).run(ctx);
            System.out.printf("PASS %s (%.2fs)%n", name, (System.nanoTime() - t0) / 1e9);
            return true;
        } catch (CheckFailed e) {
            System.out.println("FAIL " + name + ": " + e.getMessage());
            return false;
        } catch (Throwable e) {
            System.out.println("FAIL " + name + ": unexpected exception:");
            e.printStackTrace(System.out);
            return false;
        } finally {
            checkDeadline = Long.MAX_VALUE;
        }
    }

    /** Dumps all threads and halts the JVM with exit code 1 when a check outlives its window. */
    static void startWatchdog() {
        Thread watchdog = new Thread(() -> {
            while (true) {
                try {
                    Thread.sleep(200);
                } catch (InterruptedException e) {
                    return;
                }
                long deadline = checkDeadline;
                if (deadline != Long.MAX_VALUE && System.nanoTime() - deadline > 0) {
                    break;
                }
            }
            System.out.println("FAIL: watchdog timeout, the check ran past its window; thread dump follows");
            for (Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
                System.out.println("Thread " + e.getKey().getName());
                for (StackTraceElement el : e.getValue()) {
                    System.out.println("    at " + el);
                }
            }
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
    }
}
