#!/usr/bin/env python3
"""Timeline of a test run from its TRX files (`.ci/run` writes one per test assembly into TestResults/).

  tools/trx-timeline.py DIR                 assemblies: start, end (s from the first test), span, summed test time,
                                            and the MSBuild slot each ran in (two assemblies at a time)
  tools/trx-timeline.py DIR classes ASM     one assembly's test classes: start, end, span, summed time
  tools/trx-timeline.py DIR tests ASM [S]   one assembly's tests of at least S seconds, by start time
  tools/trx-timeline.py DIR top [N]         the N longest tests

ASM is the assembly's name without "Coordination." and ".Tests" (Ensemble, Compat, Server, ...).
"""
import datetime
import glob
import sys
import xml.etree.ElementTree as ET


def timestamp(text):
    # 2026-12-06T19:00:20.1234567+00:00: seven digits of fraction, which fromisoformat does not take before 3.11.
    date, _, rest = text.replace("Z", "+00:00").partition(".")
    if not rest:
        return datetime.datetime.fromisoformat(date)
    zone = next((i for i, c in enumerate(rest) if c in "+-"), len(rest))
    return datetime.datetime.fromisoformat(f"{date}.{rest[:zone][:6].ljust(6, '0')}{rest[zone:]}")


def seconds(duration):
    hours, minutes, secs = duration.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def load(directory):
    tests = []
    for path in glob.glob(directory + "/**/*.trx", recursive=True):
        root = ET.parse(path).getroot()
        ns = {"t": root.tag.split("}")[0][1:]}
        methods = {u.get("id"): u.find("t:TestMethod", ns) for u in root.findall(".//t:UnitTest", ns)}
        for result in root.findall(".//t:UnitTestResult", ns):
            method = methods[result.get("testId")]
            assembly = method.get("codeBase").split("/")[-1].removesuffix(".dll").removeprefix("Coordination.").removesuffix(".Tests")
            tests.append(dict(start=timestamp(result.get("startTime")), end=timestamp(result.get("endTime")),
                              duration=seconds(result.get("duration")), assembly=assembly,
                              cls=method.get("className").split(".")[-1], name=result.get("testName"),
                              outcome=result.get("outcome")))
    return tests


def groups(tests, key):
    by = {}
    for t in tests:
        by.setdefault(key(t), []).append(t)
    return sorted(by.items(), key=lambda kv: min(t["start"] for t in kv[1]))


def main():
    tests = load(sys.argv[1] if len(sys.argv) > 1 else ".")
    if not tests:
        sys.exit("no TRX results found")
    t0 = min(t["start"] for t in tests)
    at = lambda when: (when - t0).total_seconds()
    mode = sys.argv[2] if len(sys.argv) > 2 else "assemblies"
    if mode == "assemblies":
        slots = []   # end time of each slot's last assembly
        for name, ts in groups(tests, lambda t: t["assembly"]):
            start, end = min(at(t["start"]) for t in ts), max(at(t["end"]) for t in ts)
            # The slot whose last assembly ended just before this one started (a few seconds of host start between).
            free = [i for i, e in enumerate(slots) if e <= start + 5]
            slot = max(free, key=lambda i: slots[i]) if free else len(slots)
            if slot == len(slots):
                slots.append(end)
            else:
                slots[slot] = end
            print(f"slot {slot + 1}  {name:22s} {start:6.0f} {end:6.0f}  span {end - start:5.0f}  "
                  f"sum {sum(t['duration'] for t in ts):6.0f}  tests {len(ts)}")
        print(f"tests ran {max(at(t['end']) for t in tests):.0f} s")
    elif mode in ("classes", "tests"):
        mine = [t for t in tests if t["assembly"] == sys.argv[3]]
        if mode == "classes":
            for name, ts in groups(mine, lambda t: t["cls"]):
                start, end = min(at(t["start"]) for t in ts), max(at(t["end"]) for t in ts)
                print(f"{name:45s} {start:6.0f} {end:6.0f}  span {end - start:5.0f}  sum {sum(t['duration'] for t in ts):6.0f}  tests {len(ts)}")
        else:
            least = float(sys.argv[4]) if len(sys.argv) > 4 else 0
            for t in sorted(mine, key=lambda t: t["start"]):
                if t["duration"] >= least:
                    print(f"{at(t['start']):6.0f} {at(t['end']):6.0f} {t['duration']:6.1f}  {t['cls']:35s} {t['name'].split('.')[-1][:100]} {t['outcome']}")
    elif mode == "top":
        for t in sorted(tests, key=lambda t: -t["duration"])[:int(sys.argv[3]) if len(sys.argv) > 3 else 40]:
            print(f"{t['duration']:6.1f}  {t['assembly']:12s} {t['cls']:35s} {t['name'].split('.')[-1][:90]}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
