#!/usr/bin/env bash
# Thread-pool work items per request of one server build, a count that the machine's load does not change (issue 18:
# at one request in flight, thread wakes bound a request). Starts the server on 127.0.0.1:PORT with a fresh data dir,
# samples its dotnet.thread_pool.work_item.count for 8 s idle, then for 16 s while Coordination.Bench sends sequential
# requests (1 session, 1 in flight, no warmup), and prints (items under load - idle rate x seconds) / ops.
#   bench/threadpool-work-items.sh [--op get|set|...] [--set 'HOCON LINE']... [SERVER_DLL] [PORT]
#     --op   the Bench's operation (default get: getData)
#     --set  a server setting, e.g. --set 'coordination.persistence.journal = persistent-file' (the server's --set)
#     (defaults: this tree's Release build, port 24181)
# Needs dotnet-counters (`dotnet tool install --tool-path DIR dotnet-counters`; DOTNET_COUNTERS=DIR/dotnet-counters).
# Everything it starts stops by itself (timeouts); run it under nice -n 19 on a shared machine.
set -u
cd "$(dirname "$0")/.."
op=get
settings=()
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --op) op=$2; shift 2 ;;
    --set) settings+=(--set "$2"); shift 2 ;;
    *) positional+=("$1"); shift ;;
  esac
done
dll=${positional[0]:-src/Coordination.Server/bin/Release/net10.0/Coordination.Server.dll}
port=${positional[1]:-24181}
counters=${DOTNET_COUNTERS:-dotnet-counters}
bench=src/Coordination.Bench/bin/Release/net10.0/Coordination.Bench.dll
dir=$(mktemp -d /tmp/work-items.XXXX)
timeout 300 dotnet "$dll" --client-port "$port" --client-address 127.0.0.1 --data-dir "$dir" ${settings[@]+"${settings[@]}"} > "$dir/server.log" 2>&1 &
server=$!
# bash's /dev/tcp, not nc (not on a fresh Debian machine)
for _ in $(seq 1 60); do (timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && echo ruok >&3 && cat <&3" 2>/dev/null | grep -q imok) && break; sleep 1; done
pid=$(pgrep -f "^dotnet .*--client-port $port " | head -1)
metric="System.Runtime[dotnet.thread_pool.work_item.count]"
timeout 60 "$counters" collect -p "$pid" --counters "$metric" --format csv -o "$dir/idle.csv" --duration 00:00:00:08 >/dev/null 2>&1
timeout 120 "$counters" collect -p "$pid" --counters "$metric" --format csv -o "$dir/load.csv" --duration 00:00:00:16 >/dev/null 2>&1 &
collector=$!
sleep 2
timeout 60 dotnet "$bench" --connect "127.0.0.1:$port" --sessions 1 --inflight 1 --op "$op" --znodes 10 --warmup 0s --duration 10s \
  --json --no-progress > "$dir/bench.json" 2>"$dir/bench.err"
wait $collector
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
python3 - "$dir" "$op" <<'PY'
import csv, json, sys
d, op = sys.argv[1], sys.argv[2]
def increments(name):
    return [float(r[4]) for r in csv.reader(open(f"{d}/{name}")) if len(r) >= 5 and "work_item" in r[2]]
idle, load = increments("idle.csv"), increments("load.csv")
ops = json.load(open(f"{d}/bench.json"))["ops"]
rate = sum(idle) / max(len(idle), 1)
print(f"idle {rate:.1f} work items/s; under load {sum(load):.0f} in {len(load)} s for {ops} {op}: "
      f"{(sum(load) - rate * len(load)) / ops:.2f} work items per request")
PY
rm -rf "$dir"
