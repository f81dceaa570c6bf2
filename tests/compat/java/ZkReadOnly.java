import java.io.File;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

/**
 * Read-only mode with Apache ZooKeeper's own Java client (canBeReadOnly = true).
 *
 * Usage: java ZkReadOnly H1:P1,H2:P2,H3:P3 PATH DATA RO_FILE HEAL_FILE
 *
 * The caller has cut one member off from its quorum (the others are down, or a network partition cuts it off from
 * them) and created PATH holding DATA. The client must be told ConnectedReadOnly, read PATH and its children, and get
 * NotReadOnly for create, setData, delete and sync. It then prints "READ-ONLY OK", creates RO_FILE and waits for
 * HEAL_FILE (the caller restores the quorum), after which the client must move by itself to a read-write member (it
 * probes its hosts with isro: SyncConnected) and write there. Exit 0 on pass ("PASS"), 1 with a message on failure;
 * a watchdog ends a hung run.
 */
public final class ZkReadOnly {
    private static void fail(String msg) {
        System.out.println("FAIL: " + msg);
        System.out.flush();
        Runtime.getRuntime().halt(1);
    }

    private static void waitFor(java.util.function.BooleanSupplier pred, long seconds, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            if (pred.getAsBoolean()) return;
            Thread.sleep(50);
        }
        fail("timed out after " + seconds + " s waiting for " + what);
    }

    private interface Call { void run() throws Exception; }

    private static void refused(String what, Call call) {
        try {
            call.run();
        } catch (KeeperException.NotReadOnlyException e) {
            System.out.println(what + " refused with NotReadOnly");
            return;
        } catch (Exception e) {
            fail(what + " on a read-only server threw " + e + ", not NotReadOnly");
        }
        fail(what + " succeeded on a read-only server");
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0], path = args[1], data = args[2];
        File roFile = new File(args[3]), healFile = new File(args[4]);
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(150_000); } catch (InterruptedException e) { return; }
            fail("watchdog: no result after 150 s");
        });
        watchdog.setDaemon(true);
        watchdog.start();

        AtomicReference<Watcher.Event.KeeperState> state = new AtomicReference<>();
        ZooKeeper zk = new ZooKeeper(hosts, 10000, e -> { if (e.getType() == Watcher.Event.EventType.None) state.set(e.getState()); }, true);
        waitFor(() -> state.get() == Watcher.Event.KeeperState.ConnectedReadOnly, 60, "ConnectedReadOnly");
        long roSession = zk.getSessionId();
        System.out.println("ConnectedReadOnly session 0x" + Long.toHexString(roSession));

        String read = new String(zk.getData(path, false, null), "UTF-8");
        if (!read.equals(data)) fail("read '" + read + "' from " + path + ", expected '" + data + "'");
        System.out.println("read " + path + " = " + read + ", children " + zk.getChildren(path, false));

        refused("create", () -> zk.create(path + "/ro-write", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
        refused("setData", () -> zk.setData(path, "changed".getBytes("UTF-8"), -1));
        refused("delete", () -> zk.delete(path, -1));
        AtomicInteger syncRc = new AtomicInteger(Integer.MIN_VALUE);
        CountDownLatch synced = new CountDownLatch(1);
        zk.sync(path, (rc, p, ctx) -> { syncRc.set(rc); synced.countDown(); }, null);
        if (!synced.await(30, TimeUnit.SECONDS)) fail("sync unanswered");
        if (syncRc.get() != KeeperException.Code.NOTREADONLY.intValue()) fail("sync answered " + KeeperException.Code.get(syncRc.get()) + ", not NotReadOnly");
        System.out.println("sync refused with NotReadOnly");
        if (!new String(zk.getData(path, false, null), "UTF-8").equals(data)) fail("the refused writes changed " + path);
        System.out.println("READ-ONLY OK");
        System.out.flush();
        if (!roFile.createNewFile()) fail("cannot create " + roFile);

        waitFor(healFile::exists, 100, "the caller to heal the ensemble");
        waitFor(() -> state.get() == Watcher.Event.KeeperState.SyncConnected, 100, "SyncConnected (read-write) after the heal");
        System.out.println("SyncConnected read-write, session 0x" + Long.toHexString(zk.getSessionId()) + " (read-only one was 0x" + Long.toHexString(roSession) + ")");
        zk.setData(path, "written-after-heal".getBytes("UTF-8"), -1);
        if (!new String(zk.getData(path, false, null), "UTF-8").equals("written-after-heal")) fail("the write after the heal is not visible");
        zk.close();
        System.out.println("PASS");
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }
}
