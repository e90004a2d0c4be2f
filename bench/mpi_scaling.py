#!/usr/bin/env python3
"""Strong scaling of `snnsim run` over MPI ranks on one machine (docs/scaling.md).

Runs one config as 1 rank x 1 thread, 2 ranks x 1 thread and 1 rank x 2
threads, alternating (so a slow spell of a shared machine hits all alike),
`--repeat` times, and prints the median wall time of every phase (the job's,
mpirun start-up included; results.json's per-phase timings; what an empty
`mpirun -np N /bin/true` job costs), each rank's CPU seconds, and the
speed-ups against 1 rank x 1 thread. Checks that every run's results.json
equals the first one's (timings aside).

  bench/mpi_scaling.py configs/seed_fc_datanorm.toml --weights DIR --repeat 3
  bench/mpi_scaling.py configs/seed_fc_datanorm.toml --weights DIR --set simulation.steps=1000
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
p.add_argument("--set", action="append", default=[], help="a config override passed on to snnsim (repeatable)")
p.add_argument("--repeat", type=int, default=3)
a = p.parse_args()

variants = [("1 rank x 1 thread", 1, 1), ("2 ranks x 1 thread", 2, 1), ("1 rank x 2 threads", 1, 2)]
# results.json timings shown, in the order a run does them; "other" is the rest of `total`.
phases = ["load_data", "load_weights", "ann_accuracy", "normalisation", "simulate", "simulation_seconds"]
in_total = ["load_data", "load_weights", "ann_accuracy", "normalisation", "simulate"]
work = tempfile.mkdtemp(prefix="snnsim-scaling-")
times = {v[0]: {} for v in variants}
reference = None
# One node: shared memory only. pml ob1 (over the vader btl) skips probing
# UCX and the OFI/PSM transports, which took 0.2-0.3 s of every rank's
# MPI_Init here (0.33 s -> 0.10 s); osc ucx likewise.
mpi_flags = ["--oversubscribe", "--allow-run-as-root", "--mca", "btl", "self,vader", "--mca", "pml", "ob1",
             "--mca", "osc", "^ucx", "--mca", "btl_vader_single_copy_mechanism", "none"]


def binding(threads):
    """A one-thread rank is pinned to its core, as a cluster job would be
    (docs/scaling.md's srun --cpu-bind=cores; Open MPI's own default for two
    ranks): unpinned, the scheduler now and then put both ranks on one core
    for a while, and one rank's engine took 0.40 - 0.43 s instead of 0.37.
    A rank with more threads than that is left free to use every core."""
    return ["--bind-to", "core" if threads == 1 else "none"]


def record(name, key, value):
    times[name].setdefault(key, []).append(value)


def comparable(path):
    j = json.load(open(path))
    j.pop("timings")
    j["config"]["simulation"].pop("threads", None)
    j["config"]["output"].pop("dir", None)
    j["weights"].pop("cached", None)
    return json.dumps(j, sort_keys=True)


load_before = os.getloadavg()[0]
for r in range(a.repeat):
    for name, ranks, threads in variants:
        # The launcher alone: what any job of this many ranks costs.
        start = time.monotonic()
        subprocess.run([a.mpirun, *mpi_flags, *binding(threads), "-np", str(ranks), "/bin/true"], check=True)
        record(name, "launcher", time.monotonic() - start)

        out = os.path.join(work, f"r{ranks}t{threads}")
        cmd = [a.mpirun, *mpi_flags, *binding(threads), "-np", str(ranks),
               # each rank under /usr/bin/time: its own CPU seconds
               "sh", "-c", 'exec /usr/bin/time -f "%U %S" -o "$0.cpu.${OMPI_COMM_WORLD_RANK:-0}" "$@"', out,
               a.snnsim, "run", a.config, "--quiet", "--out", out, "--threads", str(threads),
               "--set", "output.plots=false", "--limit", str(a.limit)]
        if a.weights:
            cmd += ["--set", f'network.weights="{a.weights}"']
        for s in a.set:
            cmd += ["--set", s]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        subprocess.run(cmd, check=True)
        job = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds of the whole job (mpirun and every rank): the work done,
        # whatever the machine's load did to the wall time.
        record(name, "cpu", after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        t = json.load(open(os.path.join(out, "results.json")))["timings"]
        per_rank = []
        for k in range(ranks):
            user, system = open(f"{out}.cpu.{k}").read().split()[-2:]
            per_rank.append(float(user) + float(system))
        record(name, "rank_cpu", max(per_rank))
        record(name, "job", job)
        record(name, "total", t["total"])
        for ph in phases:
            record(name, ph, t.get(ph, 0.0))
            record(name, ph + "_cpu", t.get(ph + "_cpu", 0.0))
        # rank 0's CPU outside the run's phases: exec, MPI_Init/Finalize, the report
        record(name, "start-up_cpu", per_rank[0] - t.get("total_cpu", 0.0))
        record(name, "other", t["total"] - sum(t.get(ph, 0.0) for ph in in_total))
        record(name, "start-up", job - t["total"])
        text = comparable(os.path.join(out, "results.json"))
        if reference is None:
            reference = text
        elif text != reference:
            sys.exit(f"results of {name} differ from the first run's")
        print(f"run {r + 1}/{a.repeat} {name}: job {job:.2f} s, total {t['total']:.2f} s, "
              f"simulation {t['simulation_seconds']:.2f} s", file=sys.stderr)

med = {n: {k: statistics.median(v) for k, v in times[n].items()} for n, _, _ in variants}
base = med[variants[0][0]]
extra = "".join(f", --set {s}" for s in a.set)
print(f"{a.config}, {a.limit or 'all'} test samples{extra}, median of {a.repeat} alternating runs; "
      f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
print()
print(f"{'':22} {'job (s)':>8} {'run total':>10} {'CPU (s)':>8} {'max rank CPU':>13}   speed-up job / total / CPU critical path")
for name, _, _ in variants:
    m = med[name]
    print(f"{name:22} {m['job']:8.2f} {m['total']:10.2f} {m['cpu']:8.2f} {m['rank_cpu']:13.2f}   "
          f"{base['job'] / m['job']:.2f}x / {base['total'] / m['total']:.2f}x / {base['rank_cpu'] / m['rank_cpu']:.2f}x")
print()
cols = [("launcher", "mpirun true"), ("start-up", "start-up"), ("load_data", "load data"), ("load_weights", "load weights"),
        ("ann_accuracy", "ANN acc"), ("normalisation", "normalise"), ("simulate", "simulate"),
        ("simulation_seconds", "of it: engine"), ("other", "other")]


def phase_table(title, columns):
    """One row per variant: each phase's median and its speed-up against the first variant."""
    print(title)
    print(f"{'':22} " + " ".join(f"{label:>15}" for _, label in columns))
    for name, _, _ in variants:
        m = med[name]
        cells = []
        for key, _ in columns:
            ratio = f"({base[key] / m[key]:.2f}x)" if m[key] > 0.005 and name != variants[0][0] else ""
            cells.append(f"{m[key]:6.3f} {ratio:>8}")
        print(f"{name:22} " + " ".join(f"{c:>15}" for c in cells))
    print()


phase_table("per phase, wall seconds (speed-up against 1 rank x 1 thread)", cols)
phase_table("per phase, CPU seconds of rank 0 (speed-up against 1 rank x 1 thread): the work, whatever the load",
            [("start-up_cpu", "start-up")] + [(k + "_cpu", label) for k, label in cols[2:-2]])
print("run total, speed-up of each repeat against the same repeat's 1 rank x 1 thread (median, min - max):")
for name, _, _ in variants[1:]:
    r = [b / x for b, x in zip(times[variants[0][0]]["total"], times[name]["total"])]
    print(f"  {name:22} {statistics.median(r):.2f}x ({min(r):.2f} - {max(r):.2f}x)")
print("binding: a 1-thread rank is pinned to a core (--bind-to core); 1 rank x 2 threads is not (--bind-to none)")
print("results.json identical (timings aside) in every run: yes")
print("CPU: CPU seconds of the whole job; max rank CPU: of its busiest rank (for 1 rank x 2 threads both threads').")
print("mpirun true: an empty job of as many ranks; start-up: job - run total (mpirun, MPI_Init/Finalize, the")
print("report's writing); simulate: network and engine built, the simulation (engine) and the gather; other: the")
print("rest of the run's total. CPU start-up: rank 0's CPU seconds outside the run's total (exec, MPI_Init/Finalize,")
print("the report).")
