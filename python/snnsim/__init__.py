"""snnsim from Python: convert ReLU networks to spiking ones and simulate them.

    import numpy as np, snnsim
    data = snnsim.load_dataset("mnist10k")
    model = snnsim.Model([w1, w2, w3])              # [out, in] arrays, or snnsim.from_torch(seq)
    # conv nets: snnsim.from_onnx("net.onnx"), snnsim.from_torch(net, input_shape=(1, 28, 28)),
    # or layer dicts {"kind": "conv" | "avgpool" | "flatten" | "dense", ...} with input=(1, 28, 28)
    snn = model.normalise("data", data["train_images"])
    res = snn.simulate(data["test_images"], data["test_labels"], steps=200, threshold=1.0)
    res.accuracy, res.accuracy_curve, res.synops_curve

    report = snnsim.run("configs/default.toml", simulation={"steps": 100})   # = results.json

Every simulation option is a keyword argument named as in the config's
[simulation] section (docs/config.md); the engine runs with the GIL released,
Ctrl-C raises KeyboardInterrupt after the sample each thread is on, and
snnsim's errors are ValueError (FileNotFoundError for missing files) with the
same messages as the CLI's.
"""

import json as _json
import math as _math

from . import _snnsim
from ._snnsim import Model, Result, __version__, load_dataset

__all__ = ["__version__", "Model", "Result", "load_dataset", "run", "from_torch", "from_onnx"]


def _toml_value(value, key):
    """A Python value as TOML text for the config's key=value overrides."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true" if value else "false"
    if isinstance(value, str):
        return _json.dumps(value)
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):
        value = value.tolist()  # numpy scalars and arrays
        if isinstance(value, bool):
            return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if _math.isnan(value):
            return "nan"
        if _math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, key) for v in value) + "]"
    raise TypeError(f"{key}: cannot use a {type(value).__name__} as a config value "
                    "(give a number, bool, string or list)")


def _overrides(section, options):
    return [f"{section}.{k}={_toml_value(v, section + '.' + k)}" for k, v in options.items()]


def _simulate(self, images, labels=None, **options):
    """Simulates the spiking network on `images` and returns an snnsim.Result.

    images: numpy array [n, ...] of uint8 (0..255, used in place) or float32
        in [0, 1] (converted to round(x * 255), exact for torchvision's
        ToTensor), C-contiguous, n samples of layer_sizes[0] values each.
    labels: optional integer array [n] (gives accuracy and accuracy_curve).
    options: the config's [simulation] keys (docs/config.md), e.g.
        steps=200, threshold=1.0 (or one per spiking population), reset="subtract"|"zero",
        dt_ms=1.0, max_rate_hz=1000.0, clamp_probability=False, encoding="poisson"|"analog",
        beta=1.0, refractory_steps=0, delays=0, fixed_point_bits=16, weight_bits=32 (16, 8), weight_cutoff=0.0,
        tie_break="lowest"|"potential", seed=0, threads=0 (0: all cores), limit=0,
        early_exit="off"|"measure"|"stop", early_exit_margin=5, early_exit_steps=10.
        Defaults are the config's. An unknown or invalid option raises ValueError
        naming it (with a did-you-mean).

    The engine runs with the GIL released; the result is identical for every
    thread count and equals what `snnsim simulate` computes for the same
    weights, options and seed.
    """
    return self._simulate(images, labels, _overrides("simulation", options))


def _normalise(self, method, images=None, *, samples=0, percentile=99.9, include_last=None):
    """A normalised copy of the model (Diehl et al. 2015; robust: Rueckauer et al. 2017).

    method: "model" (weights only), "data" (largest ReLU activation over `images`)
        or "robust" (the `percentile`-th percentile of non-zero activations).
    images: training images (uint8 or float32 in [0, 1], as simulate takes);
        not needed for "model". samples: use only the first `samples` (0: all).
    include_last: scale the output layer too (default: no for model, yes otherwise).
    The result's .normalisation records the method and the factors applied.
    """
    return self._normalise(method, images, samples, percentile, include_last)


Model.simulate = _simulate
Model.normalise = _normalise


def run(config, *, threads=None, limit=None, seed=None, out=None, quiet=True, retrain=False, write=False, **overrides):
    """Runs a whole config as `snnsim run CONFIG` does and returns results.json's content as a dict.

    Overrides, any mix of:
      run("c.toml", simulation={"steps": 100, "threshold": 0.5})   sections as dicts
      run("c.toml", **{"simulation.steps": 100})                    dotted keys
    plus the CLI's shortcuts threads, limit, seed (training and simulation) and out
    (output.dir). The trained ANN is cached in output.cache as the CLI does.
    write=True also writes output.dir (results.json, CSVs, plots) and prints the
    summary unless quiet. Raises FileNotFoundError for a missing config,
    ValueError for a bad key or value (the CLI's message), KeyboardInterrupt on Ctrl-C.
    """
    sets = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            sets += _overrides(key, value)
        elif "." in key:
            sets.append(f"{key}={_toml_value(value, key)}")
        else:
            raise TypeError(f"run(): unknown argument '{key}'; give config keys as section dicts "
                            f"(simulation={{'steps': 100}}) or dotted (**{{'simulation.steps': 100}})")
    text = _snnsim._run(str(config), sets, threads, limit, seed, None if out is None else str(out),
                        quiet, retrain, write)
    return _json.loads(text)


def from_torch(module, input_shape=None):
    """A Model from a torch.nn module (needs torch).

    A Sequential of Linear (with or without bias), ReLU, Dropout, Flatten and
    Identity is read directly (nested Sequentials are walked). Anything else
    (Conv2d, AvgPool2d, BatchNorm, input normalisation written in the model,
    or a module that is not a Sequential) is exported with torch.onnx.export
    (eval mode, opset 13) to a temporary file and imported as from_onnx does;
    that needs input_shape, one sample's (channels, height, width), e.g.
    (1, 28, 28). What ONNX import refuses (MaxPool, Sigmoid, branches, ...)
    is a ValueError naming the node (docs/models.md).
    """
    from ._torch import layers_of, needs_onnx, via_onnx
    if needs_onnx(module):
        return via_onnx(module, input_shape, from_onnx)
    return Model(layers_of(module), input=input_shape)


def from_onnx(path):
    """A Model from an ONNX file (torch.onnx.export, tf2onnx, ...; docs/models.md).

    Its layers, weights and biases, with BatchNorm, input normalisation and
    the like folded in, unnormalised; model.output_relu says whether the ANN
    applies ReLU to its outputs (evaluate uses it). FileNotFoundError for a
    missing file; ValueError naming the node for what snnsim cannot run, or
    when this build has no ONNX support.
    """
    import os
    if not os.path.exists(path):
        raise FileNotFoundError(f"ONNX file '{path}' does not exist")
    return Model._from_onnx(os.fspath(path))
