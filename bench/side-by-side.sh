#!/usr/bin/env bash
# Our server beside Apache ZooKeeper 3.8 (Debian `zookeeper`) on 127.0.0.1, same durability, identical loads one after
# the other; prints one table with the ratio ours/ZooKeeper per row (see README, "Benchmarks"). Standalone by default;
# --nodes 3 runs 3-node ensembles of both (production timing, sessions round-robin over the members, server CPU and
# RSS summed over the three processes).
#   bench/side-by-side.sh                      # defaults: fsync, 3 runs x (2 s + 5 s), shapes 4x64,16x16,64x4, all rows
#   bench/side-by-side.sh --nodes 3 --runs 3 --warmup 1s --duration 3s   # 3-node ensembles
#   bench/side-by-side.sh --runs 3 --duration 3s --warmup 1s --memory
#   bench/side-by-side.sh --help               # every option
# Rows half-get/half-set run both servers at half of ZooKeeper's saturation throughput (open loop, --rate) and report
# p50/p99/p999 measured from each request's intended send time.
# Everything it starts stops by itself; --time-limit (60m) bounds the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/Coordination.Server -c Release -v q -nologo >/dev/null
dotnet build src/Coordination.Bench -c Release -v q -nologo >/dev/null
exec dotnet src/Coordination.Bench/bin/Release/net10.0/Coordination.Bench.dll side-by-side "$@"
