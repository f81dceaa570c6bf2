import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;

/**
 * SASL DIGEST-MD5 with Apache's Java client; the JAAS file (-Djava.security.auth.login.config) names the user.
 * "accepted HOSTS PATH": the client authenticates (SaslAuthenticated), creates PATH with ACL sasl:bob:cdrwa and reads
 * it back; an anonymous client (SASL off) gets NoAuth on it. "refused HOSTS": the client must see AuthFailed.
 * Prints OK and exits 0, or prints why and exits 1.
 */
public final class SaslCheck {
    public static void main(String[] args) throws Exception {
        String mode = args[0], hosts = args[1];
        CountDownLatch authenticated = new CountDownLatch(1), failed = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, 15000, e -> {
            if (e.getState() == KeeperState.SaslAuthenticated) authenticated.countDown();
            if (e.getState() == KeeperState.AuthFailed) failed.countDown();
        });
        try {
            if (mode.equals("refused")) {
                if (!failed.await(30, TimeUnit.SECONDS)) fail("no AuthFailed for a wrong password");
                if (authenticated.getCount() == 0) fail("authenticated with a wrong password");
            } else {
                if (!authenticated.await(30, TimeUnit.SECONDS)) fail("not SASL-authenticated (AuthFailed: " + (failed.getCount() == 0) + ")");
                String path = args[2];
                List<ACL> acl = Collections.singletonList(new ACL(31, new Id("sasl", "bob")));
                zk.create(path, "s".getBytes(StandardCharsets.UTF_8), acl, CreateMode.PERSISTENT);
                if (!new String(zk.getData(path, false, null), StandardCharsets.UTF_8).equals("s")) fail("read back");
                if (!zk.getACL(path, null).equals(acl)) fail("ACL " + zk.getACL(path, null));
                System.setProperty("zookeeper.sasl.client", "false");
                ZooKeeper anon = new ZooKeeper(hosts, 15000, e -> { });
                try {
                    anon.getData(path, false, null);
                    fail("an anonymous client read a sasl:bob node");
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
