#!/usr/bin/env python3
"""Dynamic reconfiguration through kazoo (issue 19), run the same against ours and Apache ZooKeeper 3.8 (3 voters,
reconfig enabled, super:super as super user). Prints one 'STEP name result' line per check; exits 1 on the first
unexpected result. The C# side (ReconfigCompatTests) starts the ensembles and compares."""
import argparse, re, sys, threading
from kazoo.client import KazooClient
from kazoo.exceptions import ZookeeperError

p = argparse.ArgumentParser()
p.add_argument("--hosts", required=True)
p.add_argument("--remove", required=True, help="id of a follower to remove")
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

def members(data):
    text = data.decode()
    servers = sorted(l.split("=")[0] for l in text.splitlines() if l.startswith("server."))
    version = [l for l in text.splitlines() if l.startswith("version=")]
    return servers, version

zk = KazooClient(hosts=a.hosts, timeout=a.timeout)
zk.start(timeout=a.timeout)
data, stat = zk.get("/zookeeper/config")
servers, version = members(data)
step("initial-servers", ",".join(servers))
step("initial-version-line", "yes" if version else "no")
step("initial-line-format", "ok" if all(re.fullmatch(r"server\.\d+=[^:;]+:\d+:\d+:participant;[^:;]+:\d+", l)
                                          for l in data.decode().splitlines() if l.startswith("server.")) else data.decode())
current = int(version[0].split("=")[1], 16) if version else 0
# ZooKeeper gives the first configuration the zxid of its first leader's NEWLEADER (epoch 1, counter 0) as version.
step("initial-version", f"{current:x}")
step("initial-stat", f"mzxid={stat.mzxid:x} version={stat.version}")
step("no-auth", error_of(lambda: zk.reconfig(joining=None, leaving=a.remove, new_members=None)))

fired = threading.Event()
zk.get("/zookeeper/config", watch=lambda event: fired.set())
zk.add_auth("digest", "super:super")
step("bad-version", error_of(lambda: zk.reconfig(joining=None, leaving=a.remove, new_members=None, from_config=current + 12345)))
step("bad-arguments", error_of(lambda: zk.reconfig(joining="server.9=nonsense", leaving=None, new_members=None)))

new_data, new_stat = zk.reconfig(joining=None, leaving=a.remove, new_members=None, from_config=current)
new_servers, new_version = members(new_data)
step("removed-servers", ",".join(new_servers))
step("removed-version-newer", "yes" if new_version and int(new_version[0].split("=")[1], 16) > current else new_version)
step("removed-version-is-mzxid", "yes" if new_version and int(new_version[0].split("=")[1], 16) == new_stat.mzxid else f"{new_version} {new_stat.mzxid:x}")
step("removed-stat-version", new_stat.version)
step("watch-fired", "yes" if fired.wait(a.timeout) else "no")
reread, _ = zk.get("/zookeeper/config")
step("reread-equal", "yes" if reread == new_data else reread.decode())
leave_all = ",".join(s.split(".")[1] for s in new_servers)
step("no-voters", error_of(lambda: zk.reconfig(joining=None, leaving=leave_all, new_members=None)))
zk.create("/reconfig-check", b"x", makepath=True)
step("write-after", zk.get("/reconfig-check")[0].decode())
# As ZooKeeper's docs suggest for reconfig without the super user: the super user opens /zookeeper/config's ACL.
from kazoo.security import OPEN_ACL_UNSAFE
zk.set_acls("/zookeeper/config", OPEN_ACL_UNSAFE)
step("config-acl-opened", "yes")
zk.stop()
zk.close()
print("OK", flush=True)
