#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders that bytes from a socket reach (fuzz/README.md).
#
#   fuzz/run.sh TARGET [SECONDS]     fuzz one target (default 3600 s); TARGET=all runs every target for SECONDS each
#
# Builds fuzz/Coordination.Fuzz, instruments the project's assemblies with SharpFuzz, and runs afl-fuzz on the
# committed seeds in fuzz/corpus/TARGET. Findings go to fuzz/findings/TARGET (not committed); a later run on the
# same target resumes there. Exits 1 when afl-fuzz saved a crash.
#
# Environment: FUZZ_FINDINGS=DIR writes findings to DIR/TARGET instead (a fresh DIR starts from the seeds);
# FUZZ_PREBUILT=DIR skips the build and instruments the Coordination.Fuzz.dll found in DIR (the CI smoke test).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

target=${1:?usage: fuzz/run.sh TARGET|all [SECONDS]}
seconds=${2:-3600}
out=$root/fuzz/out
findings=${FUZZ_FINDINGS:-$root/fuzz/findings}

command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install afl++" >&2; exit 2; }

if [ -n "${FUZZ_PREBUILT:-}" ]; then
  build=$FUZZ_PREBUILT
else
  build=$out/build
  dotnet build fuzz/Coordination.Fuzz -c Release -o "$build" -v quiet -nologo >"$out.build.log" 2>&1 \
    || { tail -30 "$out.build.log" >&2; exit 2; }
fi

# SharpFuzz rewrites assemblies in place, and only once: instrument a fresh copy every run.
bin=$(mktemp -d "${TMPDIR:-/tmp}/coordination-fuzz.XXXXXX")
trap 'rm -rf "$bin"' EXIT
cp -r "$build"/. "$bin"/
dotnet tool restore >/dev/null
for assembly in Coordination.Protocol Coordination.Core; do
  dotnet sharpfuzz "$bin/$assembly.dll" >/dev/null
done
# Of the server, only the decoders: the rest (actors, persistence) never runs in a target.
dotnet sharpfuzz "$bin/Coordination.Server.dll" Coordination.Server.Network.ClientConnection \
  Coordination.Server.Ensemble.ZabSerializer Coordination.Server.Ensemble.MemberFrameReader >/dev/null

if [ "$target" = all ]; then
  targets=$(dotnet "$bin/Coordination.Fuzz.dll" --list)
else
  targets=$target
fi

# afl-fuzz's checks that do not apply to a managed target, or to a shared machine: dotnet itself carries no
# instrumentation (SharpFuzz reports the coverage); the CPU governor and /proc/sys/kernel/core_pattern (a core
# handler can delay afl's view of a crash) are host-wide settings that a script should not change; other fuzzers
# may hold every core.
export AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_AUTORESUME=1 AFL_NO_UI=1 AFL_FAST_CAL=1

status=0
for t in $targets; do
  mkdir -p "$findings/$t"
  echo "== $t: afl-fuzz for ${seconds}s, findings in $findings/$t"
  afl-fuzz -i "$root/fuzz/corpus/$t" -o "$findings/$t" -t 5000 -m none -V "$seconds" \
    -- dotnet "$bin/Coordination.Fuzz.dll" "$t" --afl @@ >"$findings/$t/afl.log" 2>&1 \
    || { echo "afl-fuzz failed:"; tail -30 "$findings/$t/afl.log"; status=2; continue; }
  stats=$findings/$t/default/fuzzer_stats
  grep -E '^(execs_done|execs_per_sec|corpus_count|edges_found|saved_crashes|saved_hangs) ' "$stats" | tr -s ' ' | paste -sd ' '
  crashes=$(find "$findings/$t/default/crashes" -type f -name 'id:*' 2>/dev/null)
  hangs=$(find "$findings/$t/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
  [ "$hangs" -gt 0 ] && echo "$t: $hangs inputs took over 5 s (timing on a loaded machine; replay them to check)"
  if [ -n "$crashes" ]; then
    status=1
    echo "$t: CRASHES (replay: dotnet fuzz/out/build/Coordination.Fuzz.dll $t FILE)"
    echo "$crashes"
  fi
done
exit $status
