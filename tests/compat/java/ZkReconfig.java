import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.admin.ZooKeeperAdmin;
import org.apache.zookeeper.data.Stat;

/**
 * Dynamic reconfiguration with Apache ZooKeeper's own admin API (ZooKeeperAdmin.reconfigure), run the same against ours
 * and against Apache ZooKeeper 3.8 (3 voters, reconfigEnabled, super:super as super user, one more server already
 * started as a joiner).
 *
 * Usage: java ZkReconfig HOSTS JOIN_LINE JOINER_HOST:PORT JOINER_ID
 *
 * Steps: reconfigure without auth (NoAuth); as super user with a stale from-config (BadVersion); adding the running
 * joiner (the answer is the new configuration, version = its mzxid, data version -1, the config watch fires); the joiner
 * then serves the tree written through the others and writes; removing it again with the new version as from-config
 * (the answer lists the first members only, a newer version); finally /zookeeper/config is opened to anyone so that the
 * caller's zkCli runs without auth. Prints one "STEP name result" line per check and "OK" at the end; exit 1 with
 * "FAIL: ..." on an unexpected exception; a watchdog ends a hung run.
 */
public final class ZkReconfig {
    private static final int TIMEOUT_S = 60;

    private static void step(String name, Object value) {
        System.out.println("STEP " + name + " " + value);
        System.out.flush();
    }

    private static void fail(String msg) {
        System.out.println("FAIL: " + msg);
        System.out.flush();
        Runtime.getRuntime().halt(1);
    }

    private interface Call { void run() throws Exception; }

    /** The KeeperException code a call fails with, or "ok". */
    private static String errorOf(Call call) throws Exception {
        try {
            call.run();
            return "ok";
        } catch (KeeperException e) {
            return e.code().name();
        }
    }

    /** The sorted "server.N" names of a configuration's text. */
    private static List<String> servers(byte[] config) {
        List<String> names = new ArrayList<>();
        for (String line : new String(config, StandardCharsets.UTF_8).split("\n")) {
            if (line.startsWith("server.")) names.add(line.substring(0, line.indexOf('=')));
        }
        names.sort(null);
        return names;
    }

    private static long version(byte[] config) {
        for (String line : new String(config, StandardCharsets.UTF_8).split("\n")) {
            if (line.startsWith("version=")) return Long.parseLong(line.substring("version=".length()).trim(), 16);
        }
        fail("no version line in " + new String(config, StandardCharsets.UTF_8));
        return -1;
    }

    private static boolean hasLine(byte[] config, String line) {
        return Arrays.asList(new String(config, StandardCharsets.UTF_8).split("\n")).contains(line);
    }

    private static ZooKeeperAdmin connect(String hosts) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeperAdmin zk = new ZooKeeperAdmin(hosts, 20000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown();
        });
        if (!connected.await(TIMEOUT_S, TimeUnit.SECONDS)) fail("no connection to " + hosts);
        return zk;
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0], join = args[1], joiner = args[2], joinerId = args[3];
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(150_000); } catch (InterruptedException e) { return; }
            fail("watchdog: no result after 150 s");
        });
        watchdog.setDaemon(true);
        watchdog.start();

        ZooKeeperAdmin admin = connect(hosts);
        Stat stat = new Stat();
        byte[] initial = admin.getConfig(false, stat);
        long current = version(initial);
        step("no-auth", errorOf(() -> admin.reconfigure(join, null, null, current, new Stat())));
        admin.addAuthInfo("digest", "super:super".getBytes(StandardCharsets.UTF_8));
        step("add-bad-version", errorOf(() -> admin.reconfigure(join, null, null, current + 12345, new Stat())));

        CountDownLatch fired = new CountDownLatch(1);
        admin.getConfig(e -> { if (e.getType() == Watcher.Event.EventType.NodeDataChanged) fired.countDown(); }, new Stat());
        Stat addedStat = new Stat();
        byte[] added = admin.reconfigure(join, null, null, current, addedStat);
        long addedVersion = version(added);
        step("added-servers", String.join(",", servers(added)));
        step("added-line", hasLine(added, join) ? "yes" : new String(added, StandardCharsets.UTF_8));
        step("added-version-newer", addedVersion > current ? "yes" : Long.toHexString(addedVersion));
        step("added-version-is-mzxid", addedVersion == addedStat.getMzxid() ? "yes" : Long.toHexString(addedVersion) + " " + Long.toHexString(addedStat.getMzxid()));
        step("added-stat-version", addedStat.getVersion());
        step("watch-fired", fired.await(TIMEOUT_S, TimeUnit.SECONDS) ? "yes" : "no");
        admin.create("/grown-by-admin", "before-joiner-read".getBytes(StandardCharsets.UTF_8), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);

        // The joiner serves: a session on it alone reads what was written through the others, and writes.
        ZooKeeperAdmin j = connect(joiner);
        CountDownLatch synced = new CountDownLatch(1);
        j.sync("/grown-by-admin", (rc, p, ctx) -> synced.countDown(), null);
        if (!synced.await(TIMEOUT_S, TimeUnit.SECONDS)) fail("sync on the joiner unanswered");
        step("joiner-reads", new String(j.getData("/grown-by-admin", false, null), StandardCharsets.UTF_8));
        j.create("/grown-by-admin/via-joiner", "j".getBytes(StandardCharsets.UTF_8), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        byte[] joinerConfig = j.getConfig(false, new Stat());
        step("joiner-config", servers(joinerConfig).equals(servers(added)) && version(joinerConfig) == addedVersion ? "yes" : new String(joinerConfig, StandardCharsets.UTF_8));
        j.close();
        step("others-read-joiner-write", new String(admin.getData("/grown-by-admin/via-joiner", false, null), StandardCharsets.UTF_8));

        // Removing the member just added, with the version its addition answered.
        step("remove-stale-version", errorOf(() -> admin.reconfigure(null, joinerId, null, current, new Stat())));
        Stat removedStat = new Stat();
        byte[] removed = admin.reconfigure(null, joinerId, null, addedVersion, removedStat);
        step("removed-servers", String.join(",", servers(removed)));
        step("removed-version-newer", version(removed) > addedVersion ? "yes" : Long.toHexString(version(removed)));
        step("removed-version-is-mzxid", version(removed) == removedStat.getMzxid() ? "yes" : Long.toHexString(version(removed)) + " " + Long.toHexString(removedStat.getMzxid()));
        step("write-after-remove", errorOf(() -> admin.setData("/grown-by-admin", "after".getBytes(StandardCharsets.UTF_8), -1)));

        admin.setACL(ZooDefs.CONFIG_NODE, ZooDefs.Ids.OPEN_ACL_UNSAFE, -1);
        step("config-acl-opened", "yes");
        admin.close();
        System.out.println("OK");
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }
}
