import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;

/**
 * SASL (DIGEST-MD5 or GSSAPI) with Apache's Java client; the JAAS file (-Djava.security.auth.login.config) names the
 * user or principal. "accepted HOSTS PATH [ID]": the client authenticates (SaslAuthenticated), creates PATH with ACL
 * sasl:ID:cdrwa (ID defaults to bob) and reads it back; a client of the JAAS section named by -Dcheck.otherSection
 * (when set) authenticates too and gets NoAuth on it, and so does an anonymous client (SASL off). "refused HOSTS":
 * the client must see AuthFailed, and an anonymous client is still served ("refused HOSTS sasl-required": refused).
 * "super HOSTS PATH ok|noauth": an anonymous client creates PATH readable only by digest:nobody, then the JAAS user
 * reads it (a SASL super user) or gets NoAuth. "required HOSTS PATH" (SASL required): the client authenticates,
 * creates and reads PATH; a client without SASL gets SessionClosedRequireAuthException on its first request.
 * "accepted" also creates PATH-creator with CREATOR_ALL_ACL ("auth", expanded to sasl:ID).
 * Prints OK and exits 0, or prints why and exits 1.
 */
public final class SaslCheck {
    public static void main(String[] args) throws Exception {
        String mode = args[0], hosts = args[1];
        if (mode.equals("super")) {
            System.setProperty("zookeeper.sasl.client", "false");
            ZooKeeper anon = new ZooKeeper(hosts, 15000, e -> { });
            try {
                anon.create(args[2], "s".getBytes(StandardCharsets.UTF_8),
                    Collections.singletonList(new ACL(31, new Id("digest", "nobody:2jmj7l5rSw0yVb/vlWAYkK/YBwk="))), CreateMode.PERSISTENT);
            } finally {
                anon.close();
            }
            System.setProperty("zookeeper.sasl.client", "true");
        }
        CountDownLatch authenticated = new CountDownLatch(1), failed = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, 15000, e -> {
            if (e.getState() == KeeperState.SaslAuthenticated) authenticated.countDown();
            if (e.getState() == KeeperState.AuthFailed) failed.countDown();
        });
        try {
            if (mode.equals("super")) {
                if (!authenticated.await(30, TimeUnit.SECONDS)) fail("not SASL-authenticated");
                try {
                    zk.getData(args[2], false, null);
                    if (args[3].equals("noauth")) fail("read a node only digest:nobody may read");
                } catch (KeeperException.NoAuthException e) {
                    if (args[3].equals("ok")) fail("the SASL super user got NoAuth");
                }
            } else if (mode.equals("required")) {
                if (!authenticated.await(30, TimeUnit.SECONDS)) fail("not SASL-authenticated");
                zk.create(args[2], "r".getBytes(StandardCharsets.UTF_8), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                if (!new String(zk.getData(args[2], false, null), StandardCharsets.UTF_8).equals("r")) fail("read back");
                System.setProperty("zookeeper.sasl.client", "false");
                ZooKeeper anon = new ZooKeeper(hosts, 15000, e -> { });
                try {
                    anon.exists("/", false);
                    fail("a client without SASL was served");
                } catch (KeeperException.SessionClosedRequireAuthException expected) {
                } finally {
                    anon.close();
                }
            } else if (mode.equals("refused")) {
                if (!failed.await(30, TimeUnit.SECONDS)) fail("no AuthFailed");
                if (authenticated.getCount() == 0) fail("authenticated although it should be refused");
                // "refused HOSTS sasl-required": the server requires SASL, so the anonymous client must be refused instead.
                boolean saslRequired = args.length > 2 && args[2].equals("sasl-required");
                System.setProperty("zookeeper.sasl.client", "false");
                ZooKeeper anon = new ZooKeeper(hosts, 15000, e -> { });
                try {
                    if (anon.exists("/", false) == null) fail("no root for an anonymous client");
                    if (saslRequired) fail("a client without SASL was served");
                } catch (KeeperException.SessionClosedRequireAuthException e) {
                    if (!saslRequired) throw e;
                } finally {
                    anon.close();
                }
            } else {
                if (!authenticated.await(30, TimeUnit.SECONDS)) fail("not SASL-authenticated (AuthFailed: " + (failed.getCount() == 0) + ")");
                String path = args[2];
                String id = args.length > 3 ? args[3] : "bob";
                List<ACL> acl = Collections.singletonList(new ACL(31, new Id("sasl", id)));
                zk.create(path, "s".getBytes(StandardCharsets.UTF_8), acl, CreateMode.PERSISTENT);
                if (!new String(zk.getData(path, false, null), StandardCharsets.UTF_8).equals("s")) fail("read back");
                if (!zk.getACL(path, null).equals(acl)) fail("ACL " + zk.getACL(path, null));
                zk.create(path + "-creator", new byte[0], ZooDefs.Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
                if (!zk.getACL(path + "-creator", null).equals(acl)) fail("auth ACL " + zk.getACL(path + "-creator", null));
                String otherSection = System.getProperty("check.otherSection");
                if (otherSection != null) {
                    System.setProperty("zookeeper.sasl.clientconfig", otherSection);
                    CountDownLatch otherAuthenticated = new CountDownLatch(1);
                    ZooKeeper other = new ZooKeeper(hosts, 15000, e -> {
                        if (e.getState() == KeeperState.SaslAuthenticated) otherAuthenticated.countDown();
                    });
                    try {
                        if (!otherAuthenticated.await(30, TimeUnit.SECONDS)) fail("the other principal is not SASL-authenticated");
                        other.getData(path, false, null);
                        fail("another principal read a sasl:" + id + " node");
                    } catch (KeeperException.NoAuthException expected) {
                    } finally {
                        other.close();
                    }
                }
                System.setProperty("zookeeper.sasl.client", "false");
                ZooKeeper anon = new ZooKeeper(hosts, 15000, e -> { });
                try {
                    anon.getData(path, false, null);
                    fail("an anonymous client read a sasl:" + id + " node");
                } catch (KeeperException.NoAuthException expected) {
                } finally {
                    anon.close();
                }
            }
        } finally {
            zk.close();
        }
        System.out.println("OK");
    }

    private static void fail(String why) {
        System.out.println("FAIL " + why);
        System.exit(1);
    }
}
