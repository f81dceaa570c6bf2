#!/usr/bin/env bash
# 3-node ensembles side by side on this machine: ours (hocon/ensemble-3 layout on free ports) and Apache ZooKeeper 3.8
# (QuorumPeerMain, Debian `zookeeper`), same durability (fsync on), same loads one after the other:
#   - write throughput and latency (setData, sessions spread over the 3 members),
#   - read throughput (getData, sessions spread over the 3 members),
#   - time from SIGKILL of the leader to the first acknowledged write on the new leader.
#   bench/ensemble-figures.sh                 # RUNS=3 DURATION=5s WARMUP=2s SHAPE=16x16
# The main 3-node comparison is `bench/side-by-side.sh --nodes 3` (every row, p999, CPU summed over the members);
# this script stays for the failover figure and as a quick setData/getData check.
# Everything it starts it stops (trap); the whole run is bounded by `timeout` (TIME_LIMIT, default 20m).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}; DURATION=${DURATION:-5s}; WARMUP=${WARMUP:-2s}; SHAPE=${SHAPE:-16x16}
SESSIONS=${SHAPE%x*}; INFLIGHT=${SHAPE#*x}
WORK=$(mktemp -d /tmp/ensemble-figures.XXXXXX)
PY=/usr/bin/python3
dotnet build src/Coordination.Server -c Release -v q -nologo >/dev/null
dotnet build src/Coordination.Bench -c Release -v q -nologo >/dev/null
SERVER=src/Coordination.Server/bin/Release/net10.0/Coordination.Server.dll
BENCH="dotnet src/Coordination.Bench/bin/Release/net10.0/Coordination.Bench.dll"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

start_ours() {   # client ports 22181-22183, akka 22881-22883
  PIDS=()
  local secret; secret=$(head -c 24 /dev/urandom | base64)
  for i in 1 2 3; do
    cat > "$WORK/ours$i.conf" <<CONF
coordination { server-id = $i, client-port = 2218$i, data-dir = "$WORK/ours$i", four-letter-words = ["*"]
  ensemble.voters { 1 = "127.0.0.1:22881", 2 = "127.0.0.1:22882", 3 = "127.0.0.1:22883" }
  ensemble.auth.secret = "$secret" }
akka.loglevel = WARNING
CONF
    dotnet "$SERVER" --config "$WORK/ours$i.conf" >"$WORK/ours$i.log" 2>&1 & PIDS+=($!)
  done
  CONNECT=127.0.0.1:22181,127.0.0.1:22182,127.0.0.1:22183; PORTS=(22181 22182 22183)
}

start_apache() { # client ports 23181-23183, quorum 23888+/23889+
  PIDS=()
  local cp; cp=$(ls /usr/share/java/zookeeper.jar /usr/share/java/*.jar 2>/dev/null | tr '\n' ':')
  for i in 1 2 3; do
    mkdir -p "$WORK/zk$i"; echo "$i" > "$WORK/zk$i/myid"
    cat > "$WORK/zk$i.cfg" <<CONF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$WORK/zk$i
clientPort=2318$i
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
maxClientCnxns=0
server.1=127.0.0.1:23881:23981
server.2=127.0.0.1:23882:23982
server.3=127.0.0.1:23883:23983
CONF
    java -Xmx2g -cp "$cp" -Dzookeeper.log.dir="$WORK" org.apache.zookeeper.server.quorum.QuorumPeerMain "$WORK/zk$i.cfg" >"$WORK/zk$i.log" 2>&1 & PIDS+=($!)
  done
  CONNECT=127.0.0.1:23181,127.0.0.1:23182,127.0.0.1:23183; PORTS=(23181 23182 23183)
}

four() { exec 3<>/dev/tcp/127.0.0.1/"$1" && printf '%s' "$2" >&3 && cat <&3; exec 3<&- || true; }
wait_serving() {
  for _ in $(seq 1 240); do
    local modes=""; for p in "${PORTS[@]}"; do modes+=$(four "$p" srvr 2>/dev/null | grep -o 'Mode: [a-z]*' || true); done
    [[ $(grep -o leader <<<"$modes" | wc -l) == 1 && $(grep -o follower <<<"$modes" | wc -l) == 2 ]] && return 0
    sleep 0.5
  done
  echo "ensemble did not settle" >&2; return 1
}
leader_index() { for i in 0 1 2; do four "${PORTS[$i]}" srvr 2>/dev/null | grep -q 'Mode: leader' && { echo "$i"; return; }; done; echo -1; }

bench() { # op -> "ops/s p50 p99"
  $BENCH --connect "$CONNECT" --op "$1" --sessions "$SESSIONS" --inflight "$INFLIGHT" --warmup "$WARMUP" --duration "$DURATION" \
    --no-progress --json --root "/bench-$1" 2>/dev/null | $PY -c '
import json,sys; r=json.load(sys.stdin); s=next(iter(r["per_op"].values()))
print(round(s["ops_per_sec"]), round(s["latency_us"]["p50"]), round(s["latency_us"]["p99"]), r["errors"])'
}

failover() { # seconds from SIGKILL of the leader to the first acknowledged write
  local li; li=$(leader_index); local others=()
  for i in 0 1 2; do [[ $i != "$li" ]] && others+=("127.0.0.1:${PORTS[$i]}"); done
  $PY - "$(IFS=,; echo "${others[*]}")" "${PIDS[$li]}" <<'PYEOF'
import os, signal, sys, time
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry
zk = KazooClient(hosts=sys.argv[1], timeout=10, connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2))
zk.start(timeout=15); zk.ensure_path("/failover")
t = time.monotonic(); os.kill(int(sys.argv[2]), signal.SIGKILL)
while True:
    try: zk.set("/failover", b"x"); break
    except Exception: time.sleep(0.02)
print(round(time.monotonic() - t, 2)); zk.stop()
PYEOF
}

run_target() {
  local name=$1; "start_$name"; wait_serving
  for r in $(seq 1 "$RUNS"); do
    echo "$name set $(bench set)"; echo "$name get $(bench get)"
  done
  echo "$name failover $(failover)"
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; sleep 2
}

{
  run_target ours
  run_target apache
} | tee "$WORK/results.txt"
$PY - "$WORK/results.txt" <<'PYEOF'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) >= 3: rows.setdefault((parts[0], parts[1]), []).append([float(x) for x in parts[2:]])
def med(t, k, i): v = [r[i] for r in rows.get((t, k), []) if len(r) > i]; return st.median(v) if v else float("nan")
print("\n3-node ensembles, medians of runs            ours      apache   ours/apache")
for k, i, label in [("set",0,"write ops/s"),("set",1,"write p50 us"),("set",2,"write p99 us"),("get",0,"read ops/s"),("get",2,"read p99 us"),("failover",0,"leader kill -> first write, s")]:
    a, b = med("ours",k,i), med("apache",k,i)
    print(f"{label:40s} {a:10.0f} {b:10.0f}   {a/b if b else float('nan'):8.2f}" if k!="failover" else f"{label:40s} {a:10.2f} {b:10.2f}   {a/b if b else float('nan'):8.2f}")
PYEOF
