import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;

/**
 * TLS checks with Apache's Java client; the TLS settings come as system properties (zookeeper.client.secure,
 * zookeeper.clientCnxnSocket, zookeeper.ssl.*). Usage: ZkTlsChecks HOSTS CHECK [ARGS]; exit 0 when the check holds.
 *   roundtrip PATH           create, get with a watch, set, see the event, get the new data, delete
 *   create-x509 PATH DN      create PATH readable and writable only by x509:DN
 *   read PATH ok|noauth      getData PATH succeeds, or fails with NoAuth
 *   no-connect               the session is never established (within 8 s)
 *   addauth-x509 ok PATH     addAuthInfo("x509") is accepted (no AuthFailed) and PATH (ACL x509:this certificate) reads
 *   addauth-x509 authfailed  addAuthInfo("x509") ends in AuthFailed (no certificate on this connection)
 *   require-auth refused     (zookeeper.enforce.auth.*) the first request throws SessionClosedRequireAuthException
 *   require-auth digest PATH after addAuthInfo("digest") PATH is created with CREATOR_ALL_ACL and read back
 * The last two run without TLS too.
 */
public final class ZkTlsChecks {
    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        String check = args[1];
        CountDownLatch connected = new CountDownLatch(1), authFailed = new CountDownLatch(1);
        LinkedBlockingQueue<WatchedEvent> events = new LinkedBlockingQueue<>();
        ZooKeeper zk = new ZooKeeper(hosts, 10000, e -> {
            if (e.getType() == Watcher.Event.EventType.None) {
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown();
                if (e.getState() == Watcher.Event.KeeperState.AuthFailed) authFailed.countDown();
            } else {
                events.add(e);
            }
        });
        try {
            if (check.equals("no-connect")) {
                if (connected.await(8, TimeUnit.SECONDS)) fail("a session was established");
                System.out.println("OK no-connect");
                return;
            }
            if (!connected.await(20, TimeUnit.SECONDS)) fail("not connected within 20 s");
            switch (check) {
                case "roundtrip": {
                    String path = args[2];
                    zk.create(path, "one".getBytes(StandardCharsets.UTF_8), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                    String first = new String(zk.getData(path, true, null), StandardCharsets.UTF_8);
                    if (!first.equals("one")) fail("read " + first);
                    zk.setData(path, "two".getBytes(StandardCharsets.UTF_8), -1);
                    WatchedEvent event = events.poll(10, TimeUnit.SECONDS);
                    if (event == null || event.getType() != Watcher.Event.EventType.NodeDataChanged || !path.equals(event.getPath()))
                        fail("expected NodeDataChanged on " + path + ", got " + event);
                    String second = new String(zk.getData(path, false, null), StandardCharsets.UTF_8);
                    if (!second.equals("two")) fail("read " + second);
                    zk.delete(path, -1);
                    break;
                }
                case "create-x509":
                    // An ArrayList: the client's validateACL asks contains(null), which List.of refuses.
                    zk.create(args[2], "secret".getBytes(StandardCharsets.UTF_8),
                        new ArrayList<>(List.of(new ACL(ZooDefs.Perms.ALL, new Id("x509", args[3])))), CreateMode.PERSISTENT);
                    break;
                case "read": {
                    boolean expectOk = args[3].equals("ok");
                    try {
                        byte[] data = zk.getData(args[2], false, null);
                        if (!expectOk) fail("read succeeded: " + new String(data, StandardCharsets.UTF_8));
                    } catch (KeeperException.NoAuthException e) {
                        if (expectOk) fail("NoAuth");
                    }
                    break;
                }
                case "addauth-x509":
                    zk.addAuthInfo("x509", new byte[0]);
                    if (args[2].equals("ok")) {
                        zk.getData(args[3], false, null);   // answered after the auth packet
                        if (authFailed.getCount() == 0) fail("AuthFailed");
                    } else if (!authFailed.await(10, TimeUnit.SECONDS)) {
                        fail("no AuthFailed for addauth x509");
                    }
                    break;
                case "require-auth":
                    if (args[2].equals("refused")) {
                        try {
                            zk.exists("/", false);
                            fail("an unauthenticated client was served");
                        } catch (KeeperException.SessionClosedRequireAuthException expected) {
                            System.out.println("got " + expected.code() + " (" + expected.code().intValue() + ")");
                        }
                    } else {
                        zk.addAuthInfo("digest", "alice:alices-secret".getBytes(StandardCharsets.UTF_8));
                        zk.create(args[3], "a".getBytes(StandardCharsets.UTF_8), ZooDefs.Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
                        String read = new String(zk.getData(args[3], false, null), StandardCharsets.UTF_8);
                        if (!read.equals("a")) fail("read " + read);
                    }
                    break;
                default:
                    fail("unknown check " + check);
            }
            System.out.println("OK " + check);
        } finally {
            zk.close();
        }
    }

    private static void fail(String why) {
        System.out.println("FAIL " + why);
        System.exit(1);
    }
}
