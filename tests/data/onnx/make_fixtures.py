#!/usr/bin/python3
"""Regenerates the ONNX test fixtures of tests/test_onnx_import.cpp.

Needs Debian's python3-torch (1.13) and python3-numpy; the tests themselves do
not. Run from the repository root:  /usr/bin/python3 tests/data/onnx/make_fixtures.py

Three small ReLU networks are trained briefly (3 epochs of Adam on the first
4000 training images of data/mnist10k, seed 0: real, sensibly scaled weights,
not tuned for accuracy) and exported with torch.onnx.export at opset 13:

  mlp.onnx      Normalize (Sub/Div) inside, Linear+bias, BatchNorm1d, ReLU,
                Dropout, Linear+bias (a 784-16-10 MLP)
  convnet.onnx  input scaling written as Mul/Add, Conv 4 5x5 + bias, BatchNorm2d,
                ReLU, AvgPool 2, Conv 8 5x5 + bias, ReLU, AvgPool 2, Flatten,
                Linear 10 + bias, Softmax
  strided.onnx  Conv 6 4x4 stride 2 pad 1, ReLU, Conv 8 4x4 stride 2 pad 1, ReLU,
                Flatten, Linear 10 without bias (exported as MatMul); 4x4 so that
                the strides tile 28 and 14 exactly, as snnsim requires

Alongside: inputs.npy, the first 8 test images as float32 [8, 784] in [0, 1]
(pixel / 255, the input every model takes, as 1x28x28), and <model>_out.npy,
torch's outputs [8, 10] on them in eval mode (the convnet's
logits: the importer drops its trailing Softmax). torch_accuracy.json records
torch's accuracy of each model on the whole mnist10k test set.
"""
import json
import pathlib
import struct

import numpy
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parents[2] / "data" / "mnist10k"


def read_idx(path):
    raw = path.read_bytes()
    dims = raw[3]
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    return numpy.frombuffer(raw, dtype=numpy.uint8, offset=4 + 4 * dims).reshape(shape)


class Normalize(nn.Module):
    """(x - mean) / std inside the model: exported as Sub and Div."""

    def forward(self, x):
        return (x - 0.1307) / 0.3081


class Rescale(nn.Module):
    """x * 2 - 1 written as Mul/Add: exported as Mul and Add."""

    def forward(self, x):
        return x * 2.0 + (-1.0)


def mlp():
    return nn.Sequential(Normalize(), nn.Flatten(), nn.Linear(784, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Dropout(0.2), nn.Linear(16, 10))


def convnet():
    return nn.Sequential(Rescale(), nn.Conv2d(1, 4, 5), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(4, 8, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(128, 10),
                         nn.Softmax(dim=1))


def strided():
    return nn.Sequential(nn.Conv2d(1, 6, 4, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(6, 8, 4, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 7 * 7, 10, bias=False))


def train(model, images, labels, softmax_last):
    # The convnet ends in Softmax (dropped by the importer): train on its
    # logits, i.e. without the last module.
    body = model[:-1] if softmax_last else model
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(3):
        for start in range(0, len(images), 50):
            x, y = images[start:start + 50], labels[start:start + 50]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(body(x), y)
            loss.backward()
            opt.step()
    model.eval()


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    train_x = torch.from_numpy(read_idx(DATA / "train-images-idx3-ubyte")[:4000].astype(numpy.float32) / 255)
    train_y = torch.from_numpy(read_idx(DATA / "train-labels-idx1-ubyte")[:4000].astype(numpy.int64))
    test_x = torch.from_numpy(read_idx(DATA / "t10k-images-idx3-ubyte").astype(numpy.float32) / 255)
    test_y = torch.from_numpy(read_idx(DATA / "t10k-labels-idx1-ubyte").astype(numpy.int64))
    train_x, test_x = train_x.unsqueeze(1), test_x.unsqueeze(1)
    inputs = test_x[:8]
    numpy.save(HERE / "inputs.npy", inputs.reshape(8, 784).numpy())
    accuracy = {}
    for name, make, softmax_last in (("mlp", mlp, False), ("convnet", convnet, True), ("strided", strided, False)):
        model = make()
        train(model, train_x, train_y, softmax_last)
        with torch.no_grad():
            out = (model[:-1] if softmax_last else model)(inputs)
            predicted = model(test_x).argmax(dim=1)
        numpy.save(HERE / f"{name}_out.npy", out.numpy().astype(numpy.float32))
        accuracy[name] = {"test_accuracy": round(float((predicted == test_y).float().mean()), 6),
                          "test_samples": len(test_y)}
        torch.onnx.export(model, torch.zeros(1, 1, 28, 28), HERE / f"{name}.onnx", opset_version=13,
                          input_names=["image"], output_names=["logits"])
    (HERE / "torch_accuracy.json").write_text(json.dumps(accuracy, indent=2) + "\n")


if __name__ == "__main__":
    main()
