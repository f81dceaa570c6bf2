#!/usr/bin/env bash
# Our server beside Apache ZooKeeper 3.8 (Debian `zookeeper`), standalone on 127.0.0.1, same durability, identical
# loads one after the other; prints one table with the ratio ours/ZooKeeper per row (see README, "Benchmarks").
#   bench/side-by-side.sh                      # defaults: fsync, 3 runs x (2 s + 5 s), shapes 4x64,16x16,64x4, all rows
#   bench/side-by-side.sh --runs 3 --duration 3s --warmup 1s --memory
#   bench/side-by-side.sh --help               # every option
# Everything it starts stops by itself; --time-limit (60m) bounds the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/Coordination.Server -c Release -v q -nologo >/dev/null
dotnet build src/Coordination.Bench -c Release -v q -nologo >/dev/null
exec dotnet src/Coordination.Bench/bin/Release/net10.0/Coordination.Bench.dll side-by-side "$@"
