#!/usr/bin/env python3
"""Simulation time through Python against the CLI's, same weights, options and
seed: `snnsim simulate CONFIG` (its results.json timings.simulation_seconds,
the engine's wall time) against snnsim.Model.simulate (the whole call, from
Python), alternating, N runs each; prints both medians and their ratio and
checks that the two give the same predictions and curves.

    ./build/snnsim convert configs/seed_fc_datanorm.toml --out out/py_bench
    PYTHONPATH=build/python python3 bench/python_vs_cli.py configs/seed_fc_datanorm.toml out/py_bench/weights
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

import numpy as np

import snnsim

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("config")
ap.add_argument("weights", help="a converted weight directory (snnsim convert)")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--snnsim", default=str(pathlib.Path(__file__).resolve().parents[1] / "build" / "snnsim"))
args = ap.parse_args()

config = tomllib.loads(pathlib.Path(args.config).read_text())
sim = {k: v for k, v in config.get("simulation", {}).items() if k not in ("checkpoints", "batch_size")}
dataset = config.get("dataset", {}).get("name", "mnist10k")
data = snnsim.load_dataset(dataset)
model = snnsim.Model.load(args.weights)

cli_times, py_times, py_engine = [], [], []
with tempfile.TemporaryDirectory() as tmp:
    for run in range(args.runs):
        out = pathlib.Path(tmp) / f"cli{run}"
        subprocess.run([args.snnsim, "simulate", args.config, "--quiet", "--out", str(out),
                        "--set", f'network.weights="{args.weights}"'], check=True)
        cli = json.loads((out / "results.json").read_text())
        cli_times.append(cli["timings"]["simulation_seconds"])

        t = time.perf_counter()
        res = model.simulate(data["test_images"], data["test_labels"], **sim)
        py_times.append(time.perf_counter() - t)
        py_engine.append(res.seconds)

        snn = cli["snn"]
        same = (np.array_equal(res.predictions, snn["predictions"])
                and np.array_equal(res.accuracy_curve, snn["accuracy_curve"])
                and np.allclose(res.synops_curve, snn["synops_curve"], rtol=1e-12, atol=0))
        print(f"run {run + 1}: CLI {cli_times[-1]:.3f} s, Python {py_times[-1]:.3f} s "
              f"(engine {res.seconds:.3f} s); identical results: {'yes' if same else 'NO'}", flush=True)
        if not same:
            sys.exit(1)

c, p = statistics.median(cli_times), statistics.median(py_times)
print(f"{res.samples} samples x {res.steps} steps, {res.threads} threads, load average {os.getloadavg()[0]:.1f}")
print(f"median CLI simulation {c:.3f} s, Python simulate() call {p:.3f} s "
      f"(engine {statistics.median(py_engine):.3f} s): Python/CLI = {p / c:.3f}")
print(f"accuracy {res.accuracy * 100:.2f} %, {res.synops_per_sample / 1e6:.1f} M SynOps/sample")
