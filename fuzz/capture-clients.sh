#!/usr/bin/env bash
# Records what kazoo and zkCli send to a ZooKeeper server, into fuzz/corpus (fuzz/README.md, "Adding to the corpus").
#
#   fuzz/capture-clients.sh HOST:PORT      e.g. an Apache ZooKeeper 3.8 or one of our servers on 127.0.0.1:2181
#
# Needs python3-kazoo and zookeeper (zkCli.sh) from Debian. Files are named kazoo-N / zkcli-N.
set -euo pipefail
cd "$(dirname "$0")"
server=${1:?usage: fuzz/capture-clients.sh HOST:PORT}
proxy=21899

capture() {   # NAME COMMAND...: runs the command against the proxy while capture.py records
  local name=$1; shift
  python3 capture.py "$proxy" "$server" corpus "$name" & local pid=$!
  sleep 1
  "$@" || true
  sleep 1
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

capture kazoo /usr/bin/python3 - "127.0.0.1:$proxy" <<'PY'
import sys
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl
zk = KazooClient(hosts=sys.argv[1], timeout=10)
zk.start()
zk.add_auth("digest", "fuzz:secret")
if zk.exists("/fuzz"):
    zk.delete("/fuzz", recursive=True)
zk.ensure_path("/fuzz/app")
zk.create("/fuzz/app/node", b"value")
zk.create("/fuzz/app/eph-", b"", ephemeral=True, sequence=True)
zk.create("/fuzz/app/acl", b"x", acl=[make_digest_acl("fuzz", "secret", all=True)])
zk.get("/fuzz/app/node", watch=lambda e: None)
zk.exists("/fuzz/app/missing", watch=lambda e: None)
zk.get_children("/fuzz/app", watch=lambda e: None, include_data=True)
zk.set("/fuzz/app/node", b"changed", version=0)
zk.get_acls("/fuzz/app/acl")
zk.set_acls("/fuzz/app/node", [make_digest_acl("fuzz", "secret", read=True, write=True)])
zk.sync("/fuzz")
t = zk.transaction()
t.create("/fuzz/app/m", b"1")
t.check("/fuzz/app/node", 1)
t.set_data("/fuzz/app/m", b"2")
t.delete("/fuzz/app/m")
t.commit()
zk.delete("/fuzz", recursive=True)
zk.stop()
PY

capture zkcli /usr/share/zookeeper/bin/zkCli.sh -server "127.0.0.1:$proxy" <<'CLI' >/dev/null 2>&1
deleteall /fuzzcli
create /fuzzcli data
create -e -s /fuzzcli/e- eph
create -t 60000 /fuzzcli/ttl t
addauth digest fuzz:secret
setAcl /fuzzcli auth:fuzz:secret:cdrwa
getAcl /fuzzcli
get -w /fuzzcli
stat -w /fuzzcli
ls -R /fuzzcli
getAllChildrenNumber /fuzzcli
getEphemerals /fuzzcli
addWatch -m PERSISTENT_RECURSIVE /fuzzcli
removewatches /fuzzcli -a
set -v 0 /fuzzcli more
sync /fuzzcli
whoami
deleteall /fuzzcli
quit
CLI
ls corpus/client corpus/connect | grep -E 'kazoo|zkcli' | wc -l
