#!/usr/bin/env bash
# The scale curve (issue 23; README "Benchmarks"): RSS after a forced full GC, snapshot size, restart time (SIGKILL,
# then start until a getData of the newest znode) and getChildren latency of our server and Apache ZooKeeper 3.8
# (Debian `zookeeper`, -Xmx sized for each point) at each point of --points, one server running at a time.
#   bench/scale.sh                                            # 1M, 5M, 10M znodes + /wide of 1M children, both servers
#   bench/scale.sh --points 1000000,5000000 --out scale.json  # the JSON beside the table
#   bench/scale.sh --help                                     # every option
# Everything it starts stops by itself; --time-limit (100m) bounds the whole run. Needs about 2x the tree on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/Coordination.Server -c Release -v q -nologo >/dev/null
dotnet build src/Coordination.Bench -c Release -v q -nologo >/dev/null
exec dotnet src/Coordination.Bench/bin/Release/net10.0/Coordination.Bench.dll scale "$@"
