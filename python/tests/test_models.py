"""Conv, avgpool, flatten and biases in snnsim.Model, and from_onnx on the
PyTorch fixtures of tests/data/onnx (no torch needed: the fixtures hold
torch's outputs and accuracy)."""
import json
import pathlib

import numpy as np
import pytest

import snnsim

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "onnx"


def test_bias_drives_a_conv_neuron_by_hand():
    # input 1x2x2 of zeros: no input spikes; the conv neuron gets only its bias 0.25 per
    # step (threshold 1, reset by subtraction): v = 0.25 t crosses 1 at steps 5 and 9.
    # The output (weight 0.6) reaches 0.6 at step 5, 1.2 > 1 at step 9: one spike.
    m = snnsim.Model([{"kind": "conv", "weight": np.full((1, 1, 2, 2), 0.125), "bias": np.array([0.25])},
                      {"kind": "flatten"},
                      {"kind": "dense", "weight": np.array([[0.6], [0.0]])}], input=(1, 2, 2))
    r = m.simulate(np.zeros((1, 4), np.uint8), steps=10)
    assert r.spike_counts.tolist() == [[0, 2, 1]]
    assert r.output_counts.tolist() == [[1, 0]]
    assert r.bias_ops_per_sample == 10  # one neuron with a bias, 10 steps; not in SynOps
    assert r.synops_per_sample == 2 * 2  # 2 conv spikes x 2 output targets


def test_conv_current_plus_bias_by_hand():
    # Analog input of four pixels 1.0 through weights 0.125: 0.5 per step, plus bias 0.25:
    # v += 0.75 each step, spikes when v > 1 (subtract 1): at steps 2, 3, 5, 6, 7, 9, 10.
    m = snnsim.Model([{"kind": "conv", "weight": np.full((1, 1, 2, 2), 0.125), "bias": [0.25]},
                      {"kind": "flatten"}, {"kind": "dense", "weight": np.array([[0.0], [0.0]])}], input=(1, 2, 2))
    r = m.simulate(np.full((1, 4), 255, np.uint8), steps=10, encoding="analog")
    assert r.spike_counts[0, 1] == 7


def test_avgpool_and_layer_table():
    m = snnsim.Model([{"kind": "conv", "weight": np.ones((2, 1, 3, 3), np.float32), "padding": 1, "name": "c"},
                      {"kind": "avgpool", "kernel": 2},
                      {"kind": "flatten"},
                      {"kind": "dense", "weight": np.ones((3, 2 * 2 * 2)), "bias": np.zeros(3)}], input=(1, 4, 4))
    assert m.layer_sizes == [16, 32, 8, 3]
    assert [l["kind"] for l in m.layers] == ["conv", "avgpool", "flatten", "dense"]
    assert m.layers[0]["padding"] == [1, 1] and m.layers[1]["stride"] == [2, 2]
    assert m.biases[0] is None
    assert m.weights[0].shape == (2, 9)
    with pytest.raises(ValueError, match="needs 'kernel'"):
        snnsim.Model([{"kind": "avgpool"}, {"kind": "flatten"}, {"kind": "dense", "weight": np.ones((2, 4))}], input=(1, 4, 4))
    # A stride that does not tile the input is refused, naming the layer.
    with pytest.raises(ValueError, match="conv"):
        snnsim.Model([{"kind": "conv", "weight": np.ones((1, 1, 2, 2)), "stride": 2}, {"kind": "flatten"},
                      {"kind": "dense", "weight": np.ones((2, 4))}], input=(1, 5, 5))
    with pytest.raises(ValueError, match="needs weights"):
        snnsim.Model([{"kind": "conv", "weight": np.ones((2, 1, 3, 3))}, {"kind": "flatten"},
                      {"kind": "dense", "weight": np.ones((2, 7))}], input=(1, 4, 4))


@pytest.fixture(scope="module")
def mnist():
    return snnsim.load_dataset("mnist10k")


@pytest.mark.parametrize("name", ["mlp", "convnet", "strided"])
def test_from_onnx_matches_torch(name, mnist):
    m = snnsim.from_onnx(str(FIXTURES / f"{name}.onnx"))
    torch_acc = json.loads((FIXTURES / "torch_accuracy.json").read_text())[name]["test_accuracy"]
    assert abs(m.evaluate(mnist["test_images"], mnist["test_labels"]) - torch_acc) <= 0.001
    # The data-normalised SNN on the fixture inputs (mnist10k's first 8 test images)
    # against torch's argmax: 8 of 8 measured (docs/models.md); at most one may differ.
    snn = m.normalise("data", mnist["train_images"])
    r = snn.simulate(mnist["test_images"][:8], mnist["test_labels"][:8], steps=200)
    expected = np.load(FIXTURES / f"{name}_out.npy").argmax(1)
    assert (r.predictions == expected).sum() >= 7
    assert r.bias_ops_per_sample > 0


def test_layer_dicts_rebuild_an_onnx_model_spike_for_spike(mnist):
    m = snnsim.from_onnx(str(FIXTURES / "convnet.onnx"))
    layers, k = [], 0
    for spec in m.layers:
        if spec["kind"] in ("conv", "dense"):
            w = m.weights[k]
            if spec["kind"] == "conv":
                w = w.reshape(w.shape[0], -1, *spec["kernel"])
            layers.append({"kind": spec["kind"], "weight": w, "bias": m.biases[k], "stride": spec.get("stride", 1),
                           **({"padding": spec["padding"]} if "padding" in spec else {})}
                          if spec["kind"] == "conv" else {"kind": "dense", "weight": w, "bias": m.biases[k]})
            k += 1
        elif spec["kind"] == "avgpool":
            layers.append({"kind": "avgpool", "kernel": spec["kernel"], "stride": spec["stride"]})
        else:
            layers.append({"kind": "flatten"})
    again = snnsim.Model(layers, input=m.input_shape)
    x = mnist["test_images"][:10]
    a = m.normalise("model").simulate(x, steps=50)
    b = again.normalise("model").simulate(x, steps=50)
    np.testing.assert_array_equal(a.spike_counts, b.spike_counts)
    np.testing.assert_array_equal(a.synops, b.synops)


def test_an_imported_model_saves_and_loads_whole(tmp_path):
    m = snnsim.from_onnx(str(FIXTURES / "convnet.onnx"))
    m.save(tmp_path / "w")
    again = snnsim.Model.load(tmp_path / "w")
    assert again.layers == m.layers
    assert again.input_shape == m.input_shape == [1, 28, 28]
    for a, b in zip(again.weights, m.weights):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(again.biases, m.biases):
        np.testing.assert_array_equal(a, b)
