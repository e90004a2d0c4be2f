#!/usr/bin/env python3
"""A/B timing of `snnsim run` builds and weight widths, alternating.

Each variant is BINARY:BITS (an snnsim executable and a simulation.weight_bits).
Every round runs every variant once, in order, so a slow spell of the shared
machine hits all of them alike; printed per variant: the median of
results.json's timings.simulation_seconds over the rounds, every round's
value, and the SNN accuracy (which must be the same in every round). With two
or more variants, each one's per-round ratio to the first variant's time
(median, min - max) follows. The A/B figures of README's "Speed against
weight precision" come from this, comparing a commit's build with its
parent's:

  bench/ab_run.py --rounds 9 build/snnsim:32 build/snnsim:16 build/snnsim:8 \\
      --set network.weights=out/cache/mnist10k-7bdab03e590400d8
  bench/ab_run.py --rounds 5 old/snnsim:16 build/snnsim:16 --set simulation.threads=1
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

p = argparse.ArgumentParser()
p.add_argument("variants", nargs="+", help="BINARY:BITS, e.g. build/snnsim:16")
p.add_argument("--config", default="configs/seed_fc_datanorm.toml")
p.add_argument("--rounds", type=int, default=5)
p.add_argument("--set", action="append", default=[], help="a config override passed on to snnsim (repeatable)")
a = p.parse_args()
if a.rounds < 1:
    sys.exit(f"ab_run.py: --rounds must be >= 1, got {a.rounds}")

variants = []
for v in a.variants:
    binary, sep, bits = v.rpartition(":")
    if not sep or bits not in ("32", "16", "8"):
        sys.exit(f"ab_run.py: variant '{v}' is not BINARY:BITS with BITS 32, 16 or 8")
    if not os.access(binary, os.X_OK):
        sys.exit(f"ab_run.py: '{binary}' (variant '{v}') is not an executable")
    variants.append((v, binary, bits))

work = tempfile.mkdtemp(prefix="snnsim-ab-")
times = {v: [] for v, _, _ in variants}
accuracy = {}
for r in range(a.rounds):
    for name, binary, bits in variants:
        out = os.path.join(work, "out")
        cmd = [binary, "run", a.config, "--quiet", "--out", out, "--set", f"simulation.weight_bits={bits}"]
        for s in a.set:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "results.json")) as f:
            res = json.load(f)
        times[name].append(res["timings"]["simulation_seconds"])
        acc = res["snn"]["accuracy"]
        if accuracy.setdefault(name, acc) != acc:
            sys.exit(f"ab_run.py: {name}: accuracy {acc} in round {r + 1}, {accuracy[name]} before")

first = variants[0][0]
for name, _, _ in variants:
    t = times[name]
    print(f"{name:40} median {statistics.median(t):.4f} s  ({' '.join(f'{x:.3f}' for x in t)})  "
          f"accuracy {100 * accuracy[name]:.2f} %")
for name, _, _ in variants[1:]:
    r = [b / x for b, x in zip(times[first], times[name])]
    print(f"{first} / {name}: {statistics.median(r):.3f}x ({min(r):.2f} - {max(r):.2f}x) per round")
