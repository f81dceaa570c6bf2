import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

/**
 * Failover of Apache ZooKeeper's own Java client across a 3-server ensemble.
 *
 * Usage: java ZkFailover H1:P1,H2:P2,H3:P3 P1=PID1,P2=PID2,P3=PID3
 *
 * Connects with the multi-host connect string, creates an ephemeral node and sets a data watch (exists) on a
 * persistent node, then SIGKILLs the server process it is connected to. Passes when the client reconnects to
 * another member with the SAME session (SyncConnected again, never Expired), the ephemeral node still exists and
 * is owned by that session (seen from a second client too), and the watch fires (NodeDataChanged) when a second
 * client changes the node. Exit 0 on pass, 1 with a message on failure; a watchdog ends a hung run.
 */
public final class ZkFailover {
    private static void fail(String msg) {
        System.out.println("FAIL: " + msg);
        System.out.flush();
        Runtime.getRuntime().halt(1);
    }

    /** The client port of the server the client is connected to, from ZooKeeper.toString() ("remoteserver:..."). */
    private static int peerPort(ZooKeeper zk) {
        Matcher m = Pattern.compile("remoteserver:\\S*?:(\\d+)").matcher(zk.toString());
        return m.find() ? Integer.parseInt(m.group(1)) : -1;
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        Map<Integer, Long> pids = new HashMap<>();
        for (String p : args[1].split(",")) {
            String[] kv = p.split("=");
            pids.put(Integer.parseInt(kv[0]), Long.parseLong(kv[1]));
        }
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(100_000); } catch (InterruptedException e) { return; }
            fail("watchdog: no verdict within 100 s");
        });
        watchdog.setDaemon(true);
        watchdog.start();

        BlockingQueue<Watcher.Event.KeeperState> states = new LinkedBlockingQueue<>();
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, 10_000, e -> {
            if (e.getType() == Watcher.Event.EventType.None) {
                states.add(e.getState());
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown();
            }
        });
        if (!connected.await(30, TimeUnit.SECONDS)) fail("no connection within 30 s");
        long session = zk.getSessionId();
        String base = "/jf-" + Long.toHexString(System.nanoTime());
        zk.create(base, "v0".getBytes(), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        String eph = zk.create(base + "/eph", "e".getBytes(), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        BlockingQueue<WatchedEvent> events = new LinkedBlockingQueue<>();
        // A data watcher also receives connection-state events (type None): only node events count.
        zk.exists(base, e -> { if (e.getType() != Watcher.Event.EventType.None) events.add(e); });

        int port = peerPort(zk);
        if (!pids.containsKey(port)) fail("connected to port " + port + ", not one of " + pids.keySet() + ": " + zk);
        states.clear();
        new ProcessBuilder("kill", "-9", Long.toString(pids.get(port))).inheritIO().start().waitFor();
        System.out.println("KILLED " + port + " session 0x" + Long.toHexString(session));

        // Disconnected, then SyncConnected again on another server, never Expired.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        boolean sawDisconnect = false;
        while (true) {
            long left = deadline - System.nanoTime();
            if (left <= 0) fail("no reconnect within 60 s (disconnected: " + sawDisconnect + ")");
            Watcher.Event.KeeperState s = states.poll(left, TimeUnit.NANOSECONDS);
            if (s == null) continue;
            if (s == Watcher.Event.KeeperState.Expired) fail("the session expired during failover");
            if (s == Watcher.Event.KeeperState.Disconnected) sawDisconnect = true;
            if (s == Watcher.Event.KeeperState.SyncConnected && sawDisconnect) break;
        }
        if (zk.getSessionId() != session) fail("session changed to 0x" + Long.toHexString(zk.getSessionId()));
        int now = peerPort(zk);
        if (now == port) fail("reconnected to the killed server's port " + port);
        System.out.println("RECONNECTED to port " + now + ", same session");

        Stat stat = zk.exists(eph, false);
        if (stat == null) fail("ephemeral " + eph + " is gone after the failover");
        if (stat.getEphemeralOwner() != session) fail("ephemeral owner 0x" + Long.toHexString(stat.getEphemeralOwner()));

        CountDownLatch otherConnected = new CountDownLatch(1);
        ZooKeeper other = new ZooKeeper(hosts, 10_000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) otherConnected.countDown();
        });
        if (!otherConnected.await(30, TimeUnit.SECONDS)) fail("second client: no connection within 30 s");
        CountDownLatch synced = new CountDownLatch(1);
        other.sync(eph, (rc, path, ctx) -> synced.countDown(), null);
        synced.await(30, TimeUnit.SECONDS);
        Stat ostat = other.exists(eph, false);
        if (ostat == null || ostat.getEphemeralOwner() != session) fail("a second client does not see the ephemeral owned by the session");
        if (!events.isEmpty()) fail("the watch fired before the change: " + events);
        other.setData(base, "v1".getBytes(), -1);
        WatchedEvent ev = events.poll(30, TimeUnit.SECONDS);
        if (ev == null) fail("the watch set before the failover did not fire after a change");
        if (ev.getType() != Watcher.Event.EventType.NodeDataChanged || !base.equals(ev.getPath())) fail("unexpected watch event " + ev);
        System.out.println("WATCH fired: " + ev);

        zk.close();
        CountDownLatch synced2 = new CountDownLatch(1);
        other.sync(base, (rc, path, ctx) -> synced2.countDown(), null);
        synced2.await(30, TimeUnit.SECONDS);
        if (other.exists(eph, false) != null) fail("the ephemeral outlived the session's close");
        List<String> children = other.getChildren(base, false);
        for (String c : children) other.delete(base + "/" + c, -1);
        other.delete(base, -1);
        other.close();
        System.out.println("PASS");
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }
}
