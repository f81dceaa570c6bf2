#!/usr/bin/env python3
"""Growing an ensemble through kazoo's reconfig (issue 19), run the same against ours and Apache ZooKeeper 3.8 (3 voters,
reconfig enabled, super:super as super user, a fourth server started as a joiner): a stale from-config is BadVersion,
adding the running joiner answers the new configuration (version = its zxid, data version -1) and fires the config
watch, and the joiner then serves the same tree. Prints one 'STEP name result' line per check; exits 1 on the first
unexpected exception. The C# side (ReconfigCompatTests) starts the servers and compares."""
import argparse, threading
from kazoo.client import KazooClient
from kazoo.exceptions import ZookeeperError

p = argparse.ArgumentParser()
p.add_argument("--hosts", required=True)
p.add_argument("--join", required=True, help="server.N=... line of the running joiner")
p.add_argument("--joiner", required=True, help="host:port of the joiner's client port")
p.add_argument("--timeout", type=float, default=30)
a = p.parse_args()

def step(name, value):
    print(f"STEP {name} {value}", flush=True)

def error_of(call):
    try:
        call()
        return "ok"
    except ZookeeperError as e:
        return f"{type(e).__name__}({getattr(e, 'code', '?')})"

def servers_and_version(data):
    lines = data.decode().splitlines()
    return sorted(l.split("=")[0] for l in lines if l.startswith("server.")), int(next(l for l in lines if l.startswith("version="))[8:], 16)

zk = KazooClient(hosts=a.hosts, timeout=a.timeout)
zk.start(timeout=a.timeout)
zk.add_auth("digest", "super:super")
data, _ = zk.get("/zookeeper/config")
_, current = servers_and_version(data)
fired = threading.Event()
zk.get("/zookeeper/config", watch=lambda event: fired.set())
step("add-bad-version", error_of(lambda: zk.reconfig(joining=a.join, leaving=None, new_members=None, from_config=current + 12345)))
new_data, new_stat = zk.reconfig(joining=a.join, leaving=None, new_members=None, from_config=current)
servers, version = servers_and_version(new_data)
step("added-servers", ",".join(servers))
step("added-line", "yes" if a.join in new_data.decode().splitlines() else new_data.decode())
step("added-version-newer", "yes" if version > current else f"{version:x}")
step("added-version-is-mzxid", "yes" if version == new_stat.mzxid else f"{version:x} {new_stat.mzxid:x}")
step("added-stat-version", new_stat.version)
step("watch-fired", "yes" if fired.wait(a.timeout) else "no")
step("add-again-same", "yes" if servers_and_version(zk.get("/zookeeper/config")[0])[0] == servers else "no")
zk.create("/grown", b"before-joiner-read", makepath=True)

# The joiner serves: a session on it alone reads what was written through the others, and writes.
j = KazooClient(hosts=a.joiner, timeout=a.timeout)
j.start(timeout=a.timeout)
j.sync("/grown")
step("joiner-reads", j.get("/grown")[0].decode())
j.create("/grown/via-joiner", b"j")
step("joiner-config", "yes" if servers_and_version(j.get("/zookeeper/config")[0]) == (servers, version) else j.get("/zookeeper/config")[0].decode())
j.stop(); j.close()
step("others-read-joiner-write", zk.get("/grown/via-joiner")[0].decode())
from kazoo.security import OPEN_ACL_UNSAFE
zk.set_acls("/zookeeper/config", OPEN_ACL_UNSAFE)
step("config-acl-opened", "yes")
zk.stop(); zk.close()
print("OK", flush=True)
