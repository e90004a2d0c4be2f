#!/usr/bin/python3
"""Figures for network.model (docs/models.md, README): through the built snnsim binary.

  /usr/bin/python3 bench/onnx_models.py [--build build] [--repeat 5] [--skip-accuracy]

1. For each fixture in tests/data/onnx (mlp, convnet, strided): `snnsim run` with
   network.model, data-based normalisation, 200 steps, all 1996 mnist10k test
   images; prints snnsim's ANN accuracy against torch's (torch_accuracy.json) and
   the SNN's against the ANN.
2. Load time of models of the papers' sizes: exports Diehl et al.'s 784-1200-1200-10
   MLP and the 12c5-2s-64c5-2s-10o ConvNet (random weights, with biases) with
   torch.onnx.export into a temporary directory (needs torch) and reads
   results.json's timings.load_weights (import and checks, no simulation to speak
   of: 1 sample, 1 step, no normalisation) over --repeat runs; prints the median.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "onnx"


def snnsim(build, *args):
    r = subprocess.run([str(build / "snnsim"), *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"snnsim {' '.join(map(str, args))} failed:\n{r.stdout}{r.stderr}")
    return r


def config(tmp, model, method="data", steps=200):
    cfg = pathlib.Path(tmp) / f"{pathlib.Path(model).stem}-{method}.toml"
    cfg.write_text(f'[dataset]\nname = "mnist10k"\n[network]\nmodel = {json.dumps(str(model))}\n'
                   f'[normalisation]\nmethod = "{method}"\n[simulation]\nsteps = {steps}\n')
    return cfg


def accuracy(build, tmp):
    torch_acc = json.loads((FIXTURES / "torch_accuracy.json").read_text())
    print(f"{'model':<9} {'torch ANN':>9} {'snnsim ANN':>10} {'diff':>6} {'SNN 200 steps':>13} {'SNN - ANN':>9} "
          f"{'SynOps/sample':>13} {'bias ops/sample':>15} {'sim s':>6}")
    for name in ("mlp", "convnet", "strided"):
        out = pathlib.Path(tmp) / f"run-{name}"
        snnsim(build, "run", config(tmp, FIXTURES / f"{name}.onnx"), "--quiet", "--out", out)
        r = json.loads((out / "results.json").read_text())
        t, a, s = torch_acc[name]["test_accuracy"] * 100, r["ann"]["accuracy"] * 100, r["snn"]["accuracy"] * 100
        print(f"{name:<9} {t:>8.2f}% {a:>9.2f}% {a - t:>+6.2f} {s:>12.2f}% {s - a:>+9.2f} "
              f"{r['snn']['synops_per_sample'] / 1e6:>11.3f} M {r['snn']['bias_ops_per_sample'] / 1e6:>13.3f} M "
              f"{r['timings']['simulation_seconds']:>6.1f}")


def load_times(build, tmp, repeat):
    import torch
    from torch import nn
    torch.manual_seed(0)
    models = {
        "diehl_mlp_784-1200-1200-10": (nn.Sequential(nn.Flatten(), nn.Linear(784, 1200), nn.ReLU(), nn.Linear(1200, 1200),
                                                     nn.ReLU(), nn.Linear(1200, 10)), 2395210),
        "diehl_convnet_12c5-2s-64c5-2s-10o": (nn.Sequential(nn.Conv2d(1, 12, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(12, 64, 5),
                                                            nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(1024, 10)), 29826),
    }
    for name, (net, params) in models.items():
        assert sum(p.numel() for p in net.parameters()) == params
        path = pathlib.Path(tmp) / f"{name}.onnx"
        net.eval()
        torch.onnx.export(net, torch.zeros(1, 1, 28, 28), str(path), opset_version=13)
        cfg = config(tmp, path, method="none", steps=1)
        seconds = []
        for i in range(repeat):
            out = pathlib.Path(tmp) / f"load-{name}-{i}"
            snnsim(build, "simulate", cfg, "--quiet", "--out", out, "--limit", 1)
            seconds.append(json.loads((out / "results.json").read_text())["timings"]["load_weights"])
        print(f"{name}: {params} parameters, {path.stat().st_size / 1e6:.1f} MB; network.model load "
              f"median {statistics.median(seconds) * 1000:.1f} ms (min {min(seconds) * 1000:.1f}, "
              f"max {max(seconds) * 1000:.1f}) over {repeat} runs")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    a = ap.parse_args()
    build = pathlib.Path(a.build)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="snnsim-onnx-") as tmp:
        if not a.skip_accuracy:
            accuracy(build, tmp)
        if not a.skip_load:
            load_times(build, tmp, a.repeat)


if __name__ == "__main__":
    main()
