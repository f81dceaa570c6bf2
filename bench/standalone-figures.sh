#!/usr/bin/env bash
# Side by side, one after the other on this machine: our standalone server and Apache ZooKeeper 3.8 standalone
# (with its default fsync, and with forceSync=no), under identical loads. Prints one JSON line per run.
# Usage: bench/standalone-figures.sh [duration] [sessions x inflight ...]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-8s}; shift || true
shapes=${*:-"16x16 64x4"}
dotnet build src/Coordination.Bench -c Release -v q >/dev/null
dotnet build src/Coordination.Server -c Release -v q >/dev/null
bench="dotnet src/Coordination.Bench/bin/Release/net10.0/Coordination.Bench.dll"
for shape in $shapes; do
  s=${shape%x*}; d=${shape#*x}
  for op in get set create; do
    for target in ours apache apache-nosync; do
      extra=()
      launch=$target
      if [ "$target" = apache-nosync ]; then launch=apache; extra=(--apache-cfg forceSync=no); fi
      out=$($bench --launch "$launch" "${extra[@]}" --sessions "$s" --inflight "$d" --op "$op" --value-size 100 \
            --warmup 2s --duration "$duration" --no-progress --json 2>/dev/null || true)
      echo "{\"target\":\"$target\",\"shape\":\"$shape\",\"op\":\"$op\",\"result\":$out}"
    done
  done
done
