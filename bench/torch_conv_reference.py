#!/usr/bin/python3
"""PyTorch reference for the paper's ConvNet 28x28-12c5-2s-64c5-2s-10o on mnist10k.

conv 12 5x5 -> ReLU -> avgpool 2 -> conv 64 5x5 -> ReLU -> avgpool 2 -> flatten
-> dense 10 (linear logits), no biases, PyTorch's default (Kaiming-uniform)
init, Adam lr 1e-3, batch 100, 15 epochs, softmax cross-entropy, pixels / 255.
Times the training loop only (as bench_convnet does) and prints one line per
run plus the median. Needs python3-torch; no test depends on it.

    /usr/bin/python3 bench/torch_conv_reference.py [--data data/mnist10k] [--threads 2] [--repeat 3]
"""
import argparse
import os
import statistics
import time

import torch
import torch.nn as nn


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def net(dropout):
    layers = [nn.Conv2d(1, 12, 5, bias=False), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.AvgPool2d(2), nn.Conv2d(12, 64, 5, bias=False), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.AvgPool2d(2), nn.Flatten(), nn.Linear(1024, 10, bias=False)]
    return nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "mnist10k"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    xtr = read_idx(os.path.join(a.data, "train-images-idx3-ubyte")).float().div_(255).unsqueeze(1)
    ytr = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte")).long()
    xte = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte")).float().div_(255).unsqueeze(1)
    yte = read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte")).long()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, train {len(xtr)}, test {len(xte)}, "
          f"load {open('/proc/loadavg').read().split()[:3]}")
    times, accs = [], []
    for r in range(a.repeat):
        torch.manual_seed(a.seed + r)
        model = net(a.dropout)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        start = time.perf_counter()
        for _ in range(a.epochs):
            model.train()
            order = torch.randperm(len(xtr))
            for i in range(0, len(xtr), 100):
                idx = order[i:i + 100]
                opt.zero_grad()
                loss = loss_fn(model(xtr[idx]), ytr[idx])
                loss.backward()
                opt.step()
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        times.append(seconds)
        accs.append(acc)
        print(f"run {r + 1}: train {seconds:.2f} s, test accuracy {100 * acc:.2f} %", flush=True)
    print(f"median: train {statistics.median(times):.2f} s, test accuracy {100 * statistics.median(accs):.2f} %")


if __name__ == "__main__":
    main()
