"""The Python module against the snnsim CLI on the same config and seed: the
CLI process is the independent expectation."""
import numpy as np
import pytest

import snnsim
from conftest import TINY

# configs/tiny.toml's [simulation] keys, given to simulate() as keywords.
TINY_SIMULATION = dict(steps=50, dt_ms=5, max_rate_hz=400, clamp_probability=True, threshold=1, limit=200)


def test_run_returns_results_json(tiny_cli):
    cli = tiny_cli["run"]
    py = snnsim.run(TINY, out=tiny_cli["root"] / "run", output={"cache": str(tiny_cli["cache"])})
    assert py["weights"]["cached"] is True  # the CLI run trained; Python found its cache
    for r in (cli, py):
        del r["timings"]
        del r["weights"]["cached"]
    assert py == cli


def test_run_overrides_reach_the_config(tiny_cli):
    py = snnsim.run(TINY, out=tiny_cli["root"] / "run", limit=20, output={"cache": str(tiny_cli["cache"])},
                    **{"simulation.steps": 10, "simulation.checkpoints": [5, 10]})
    assert py["snn"]["samples"] == 20
    assert py["snn"]["steps"] == 10
    assert len(py["snn"]["accuracy_curve"]) == 10
    # The first 20 samples' predictions after 10 steps cannot be compared with
    # the 50-step run's, but the labels are the dataset's first 20.
    assert py["snn"]["labels"] == tiny_cli["run"]["snn"]["labels"][:20]


def test_normalise_equals_cli_convert(tiny_cli):
    data = snnsim.load_dataset("mnist10k")
    ann = snnsim.Model.load(tiny_cli["ann"])
    snn = ann.normalise("data", data["train_images"], samples=500)
    expected = snnsim.Model.load(tiny_cli["converted"])
    assert snn.normalisation["method"] == "data"
    assert snn.normalisation["factors"] == pytest.approx(expected.normalisation["factors"], rel=1e-12)
    for a, b in zip(snn.weights, expected.weights):
        np.testing.assert_array_equal(a, b)


def test_simulate_equals_cli_simulate(tiny_cli):
    data = snnsim.load_dataset("mnist10k")
    model = snnsim.Model.load(tiny_cli["converted"])
    res = model.simulate(data["test_images"], data["test_labels"], **TINY_SIMULATION)
    cli = tiny_cli["simulate"]["snn"]
    assert res.samples == cli["samples"] == 200
    assert res.accuracy == cli["accuracy"]
    np.testing.assert_array_equal(res.accuracy_curve, cli["accuracy_curve"])
    np.testing.assert_array_equal(res.predictions, cli["predictions"])
    np.testing.assert_array_equal(res.labels, cli["labels"])
    np.testing.assert_allclose(res.synops_curve, cli["synops_curve"], rtol=1e-12)
    np.testing.assert_allclose(res.synops_per_connection, [c["synops_per_sample"] for c in cli["connections"]], rtol=1e-12)
    np.testing.assert_allclose(res.spike_counts.mean(axis=0), [p["spikes_per_sample"] for p in cli["populations"]],
                               rtol=1e-12)
    # Internal consistency of the arrays: per-step SynOps add up to the per-connection totals.
    np.testing.assert_array_equal(res.step_synops.sum(axis=1), res.synops.sum(axis=1))
    np.testing.assert_array_equal(res.output_counts.sum(axis=1), res.spike_counts[:, -1])
    np.testing.assert_array_equal(res.step_predictions[:, -1], res.predictions)


def test_float32_images_give_the_same_spikes(tiny_cli):
    data = snnsim.load_dataset("mnist10k")
    model = snnsim.Model.load(tiny_cli["converted"])
    images = data["test_images"][:50]
    a = model.simulate(images, **TINY_SIMULATION)
    b = model.simulate(images.astype(np.float32) / 255, **TINY_SIMULATION)
    np.testing.assert_array_equal(a.spike_counts, b.spike_counts)
    np.testing.assert_array_equal(a.step_predictions, b.step_predictions)


def test_thread_count_does_not_change_results(tiny_cli):
    data = snnsim.load_dataset("mnist10k")
    model = snnsim.Model.load(tiny_cli["converted"])
    one = model.simulate(data["test_images"][:100], threads=1, **{k: v for k, v in TINY_SIMULATION.items()})
    two = model.simulate(data["test_images"][:100], threads=2, **TINY_SIMULATION)
    assert one.threads == 1
    np.testing.assert_array_equal(one.spike_counts, two.spike_counts)
    np.testing.assert_array_equal(one.step_synops, two.step_synops)


def test_model_round_trips_through_a_weight_directory(tmp_path, tiny_cli):
    model = snnsim.Model.load(tiny_cli["converted"])
    model.save(tmp_path / "w")
    again = snnsim.Model.load(tmp_path / "w")
    assert again.layer_sizes == model.layer_sizes
    assert again.normalisation == model.normalisation
    for a, b in zip(again.weights, model.weights):
        np.testing.assert_array_equal(a, b)


def test_normalisation_factors_against_numpy(tiny_cli):
    # A second implementation: the activations computed with numpy (float64).
    data = snnsim.load_dataset("mnist10k")
    ann = snnsim.Model.load(tiny_cli["ann"])
    x = data["train_images"][:500].reshape(500, -1).astype(np.float64) / 255
    w1, w2 = (w.astype(np.float64) for w in ann.weights)
    h = np.maximum(x @ w1.T, 0)
    out = np.maximum(h @ w2.T, 0)
    # data-based: lambda_l = max(largest weight, largest activation), factors lambda_l / lambda_{l-1}.
    lam1 = max(w1.max(), h.max())
    lam2 = max(w2.max(), out.max())
    factors = ann.normalise("data", data["train_images"], samples=500).normalisation["factors"]
    assert factors == pytest.approx([lam1, lam2 / lam1], rel=1e-5)
    # robust, first layer: nearest-rank 99th percentile of the non-zero activations;
    # snnsim's histogram may overestimate by at most 2^-10 (conversion/normalise.h).
    nz = np.sort(h[h > 0])
    exact = nz[int(np.ceil(0.99 * len(nz))) - 1]
    robust = ann.normalise("robust", data["train_images"], samples=500, percentile=99).normalisation["factors"][0]
    assert exact * (1 - 1e-5) <= robust <= exact * (1 + 2 ** -10) * (1 + 1e-5)


def test_evaluate_equals_the_cli_ann_accuracy(tiny_cli):
    data = snnsim.load_dataset("mnist10k")
    ann = snnsim.Model.load(tiny_cli["ann"])
    # tiny.toml trains with linear logits (output_relu = false) and simulates 200 test images.
    acc = ann.evaluate(data["test_images"][:200], data["test_labels"][:200], output_relu=False)
    assert acc == tiny_cli["run"]["ann"]["accuracy"]
