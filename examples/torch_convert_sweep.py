#!/usr/bin/env python3
"""Train a small ReLU network in PyTorch, convert it with snnsim, sweep the
threshold and the simulated steps, and plot accuracy against SynOps.

    PYTHONPATH=build/python python3 examples/torch_convert_sweep.py            # trains with torch
    PYTHONPATH=build/python python3 examples/torch_convert_sweep.py --weights out/x/weights   # no torch needed

Writes out/example_sweep.csv, and out/example_sweep.png when matplotlib is
installed. One simulation per threshold gives every step count at once:
accuracy_curve[t] and synops_curve[t] are the figures after t + 1 steps.
"""
import argparse
import pathlib
import time

import numpy as np

import snnsim

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--weights", help="a weight directory to use instead of training with torch")
ap.add_argument("--dataset", default="mnist10k")
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--samples", type=int, default=500, help="test images simulated")
ap.add_argument("--steps", type=int, default=200)
ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 1.0, 2.0])
ap.add_argument("--out", default="out")
args = ap.parse_args()

data = snnsim.load_dataset(args.dataset)
train_x, train_y = data["train_images"], data["train_labels"]
test_x, test_y = data["test_images"][:args.samples], data["test_labels"][:args.samples]


def train_with_torch():
    import torch
    torch.manual_seed(0)
    # No biases: snnsim's neurons have none (Diehl et al. 2015).
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 300, bias=False), torch.nn.ReLU(),
                              torch.nn.Dropout(0.2), torch.nn.Linear(300, 10, bias=False))
    x = torch.from_numpy(train_x.astype(np.float32) / 255)
    y = torch.from_numpy(train_y.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 100):
            idx = perm[i:i + 100]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(torch.from_numpy(test_x.astype(np.float32) / 255)).argmax(1).numpy() == test_y).mean()
    print(f"ANN (torch, {args.epochs} epochs): test accuracy {acc * 100:.2f} % on {len(test_y)} images")
    return snnsim.from_torch(net)


if args.weights:
    ann = snnsim.Model.load(args.weights)
else:
    try:
        ann = train_with_torch()
    except ImportError:
        raise SystemExit("torch is not installed: give --weights DIR (e.g. from `snnsim convert`)")

snn = ann if ann.normalisation["method"] != "none" else ann.normalise("data", train_x)
print(f"{snn}: factors {[round(f, 3) for f in snn.normalisation['factors']]}")

rows = []
checkpoints = [s for s in (10, 25, 50, 100, 200, 500) if s <= args.steps]
for theta in args.thresholds:
    t = time.perf_counter()
    res = snn.simulate(test_x, test_y, steps=args.steps, threshold=theta, dt_ms=5, max_rate_hz=400,
                       clamp_probability=True)
    print(f"threshold {theta}: {res.accuracy * 100:.2f} % after {args.steps} steps, "
          f"{res.synops_per_sample / 1e6:.2f} M SynOps/image ({time.perf_counter() - t:.2f} s)")
    for step in range(1, args.steps + 1):
        rows.append((theta, step, res.accuracy_curve[step - 1], res.synops_curve[step - 1]))
    print("   " + ", ".join(f"{s} steps: {res.accuracy_curve[s - 1] * 100:.1f} %" for s in checkpoints))

out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
# Whole or not at all: a temporary beside the target, then a rename.
np.savetxt(out / "example_sweep.csv.tmp", np.array(rows), delimiter=",", fmt=["%g", "%d", "%.6f", "%.1f"],
           header="threshold,steps,accuracy,synops_per_image", comments="")
(out / "example_sweep.csv.tmp").replace(out / "example_sweep.csv")
print(f"wrote {out / 'example_sweep.csv'}")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: no plot (the CSV has the figures)")
else:
    table = np.array(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for theta in args.thresholds:
        sel = table[table[:, 0] == theta]
        ax.plot(sel[:, 3] / 1e6, sel[:, 2] * 100, label=f"threshold {theta}")
        marks = sel[np.isin(sel[:, 1], checkpoints)]
        ax.scatter(marks[:, 3] / 1e6, marks[:, 2] * 100, s=12)
    ax.set_xlabel("SynOps per image (millions; dots at " + ", ".join(map(str, checkpoints)) + " steps)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "example_sweep.png.tmp", dpi=120, format="png")
    (out / "example_sweep.png.tmp").replace(out / "example_sweep.png")
    print(f"wrote {out / 'example_sweep.png'}")
