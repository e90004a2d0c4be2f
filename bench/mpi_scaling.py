#!/usr/bin/env python3
"""Strong scaling of `snnsim run` over MPI ranks on one machine (docs/scaling.md).

Runs one config as 1 rank x 1 thread, 2 ranks x 1 thread and 1 rank x 2
threads, alternating (so a slow spell of a shared machine hits all alike),
`--repeat` times, and prints the median wall times (the job's, mpirun start-up
included; the run's own `total`; and the simulation phase) and the speed-ups
against 1 rank x 1 thread. Checks that every run's results.json equals the
first one's (timings aside).

  bench/mpi_scaling.py configs/seed_fc_datanorm.toml --weights DIR --repeat 3
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

p = argparse.ArgumentParser()
p.add_argument("config")
p.add_argument("--snnsim", default="build/snnsim")
p.add_argument("--mpirun", default="mpirun")
p.add_argument("--weights", help="network.weights: skip training (an unnormalised weight directory)")
p.add_argument("--limit", type=int, default=0, help="test samples (0: all)")
p.add_argument("--repeat", type=int, default=3)
a = p.parse_args()

variants = [("1 rank x 1 thread", 1, 1), ("2 ranks x 1 thread", 2, 1), ("1 rank x 2 threads", 1, 2)]
work = tempfile.mkdtemp(prefix="snnsim-scaling-")
times = {v[0]: {"job": [], "total": [], "simulation": [], "normalisation": [], "cpu": [], "rank_cpu": []} for v in variants}
reference = None


def comparable(path):
    j = json.load(open(path))
    j.pop("timings")
    j["config"]["simulation"].pop("threads", None)
    j["config"]["output"].pop("dir", None)
    j["weights"].pop("cached", None)
    return json.dumps(j, sort_keys=True)


for r in range(a.repeat):
    for name, ranks, threads in variants:
        out = os.path.join(work, f"r{ranks}t{threads}")
        cmd = [a.mpirun, "--oversubscribe", "--allow-run-as-root", "--mca", "btl", "self,vader",
               "--mca", "btl_vader_single_copy_mechanism", "none", "--bind-to", "none", "-np", str(ranks),
               # each rank under /usr/bin/time: its own CPU seconds
               "sh", "-c", 'exec /usr/bin/time -f "%U %S" -o "$0.cpu.${OMPI_COMM_WORLD_RANK:-0}" "$@"', out,
               a.snnsim, "run", a.config, "--quiet", "--out", out, "--threads", str(threads),
               "--set", "output.plots=false", "--limit", str(a.limit)]
        if a.weights:
            cmd += ["--set", f'network.weights="{a.weights}"']
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        subprocess.run(cmd, check=True)
        job = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds of the whole job (mpirun and every rank): the work done,
        # whatever the machine's load did to the wall time.
        times[name]["cpu"].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        t = json.load(open(os.path.join(out, "results.json")))["timings"]
        per_rank = []
        for k in range(ranks):
            user, system = open(f"{out}.cpu.{k}").read().split()[-2:]
            per_rank.append(float(user) + float(system))
        times[name]["rank_cpu"].append(max(per_rank))
        times[name]["job"].append(job)
        times[name]["total"].append(t["total"])
        times[name]["simulation"].append(t["simulation_seconds"])
        times[name]["normalisation"].append(t.get("normalisation", 0.0))
        text = comparable(os.path.join(out, "results.json"))
        if reference is None:
            reference = text
        elif text != reference:
            sys.exit(f"results of {name} differ from the first run's")
        print(f"run {r + 1}/{a.repeat} {name}: job {job:.2f} s, total {t['total']:.2f} s, "
              f"simulation {t['simulation_seconds']:.2f} s", file=sys.stderr)

print(f"{a.config}, {a.limit or 'all'} test samples, median of {a.repeat} alternating runs; "
      f"load average before: {os.getloadavg()[0]:.1f}")
print(f"{'':22} {'job (s)':>9} {'run total':>10} {'normalise':>10} {'simulate':>9} {'CPU (s)':>8} {'max rank CPU':>13}   speed-up job / total / simulate / CPU critical path")
base = {k: statistics.median(v) for k, v in times[variants[0][0]].items()}
for name, _, _ in variants:
    m = {k: statistics.median(v) for k, v in times[name].items()}
    print(f"{name:22} {m['job']:9.2f} {m['total']:10.2f} {m['normalisation']:10.2f} {m['simulation']:9.2f} {m['cpu']:8.2f} {m['rank_cpu']:13.2f}   "
          f"{base['job'] / m['job']:.2f}x / {base['total'] / m['total']:.2f}x / {base['simulation'] / m['simulation']:.2f}x / "
          f"{base['rank_cpu'] / m['rank_cpu']:.2f}x")
print("results.json identical (timings aside) in every run: yes")
print("CPU: CPU seconds of the whole job; max rank CPU: of its busiest rank (for 1 rank x 2 threads both threads')")
