#!/usr/bin/env python3
"""A/B per-request timing of two builds of the `profile` binary, alternated.

Usage: benches/lifecycle-ab.py BASE_PROFILE NEW_PROFILE [ROUNDS] [ITERS]

SCENARIOS (space-separated, environment) picks the scenarios; default
all seven (plain nocookie read write new renew renew-steady).

Each round runs, for every scenario, bare (the same request without a
layer), the base build and the new build, one process each, back to back,
and records ns/request. Alternating within a round cancels the slow drift
of a shared VM; the medians over rounds are printed, with each build's
overhead over the bare run of the same round and the ratio new/base of the
sessionware time per request.
"""
import os
import statistics
import subprocess
import sys

base, new = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 9
iters = sys.argv[4] if len(sys.argv) > 4 else "100000"
scenarios = os.environ.get("SCENARIOS", "plain nocookie read write new renew renew-steady").split()


def ns(binary, lib, scenario):
    out = subprocess.run([binary, lib, scenario, iters], capture_output=True, text=True, check=True).stdout
    return float(out.split(": ")[1].split(" ns")[0])


rows = {s: {"bare": [], "base": [], "new": []} for s in scenarios}
for r in range(rounds):
    for s in scenarios:
        order = [("base", base), ("new", new)] if r % 2 == 0 else [("new", new), ("base", base)]
        rows[s]["bare"].append(ns(new, "bare", s))
        for name, binary in order:
            rows[s][name].append(ns(binary, "sessionware", s))
    print(f"round {r + 1}/{rounds} done", file=sys.stderr)

print(f"| scenario | bare ns | base ns | new ns | base overhead | new overhead | new / base (time) | new / base (overhead) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for s in scenarios:
    bare = statistics.median(rows[s]["bare"])
    b = statistics.median(rows[s]["base"])
    n = statistics.median(rows[s]["new"])
    # Per-round ratios, then their median: robust to drift between rounds.
    ratio = statistics.median([nn / bb for nn, bb in zip(rows[s]["new"], rows[s]["base"])])
    ob = statistics.median([bb - x for bb, x in zip(rows[s]["base"], rows[s]["bare"])])
    on = statistics.median([nn - x for nn, x in zip(rows[s]["new"], rows[s]["bare"])])
    print(f"| {s} | {bare:.0f} | {b:.0f} | {n:.0f} | +{ob:.0f} | +{on:.0f} | {ratio:.3f} | {on / ob:.3f} |")
