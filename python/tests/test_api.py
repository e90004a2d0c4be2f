"""The module's own behaviour: hand-computed spikes, bad input, Ctrl-C, the
GIL, docstrings."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import snnsim


def chain(*weights):
    return snnsim.Model([np.array(w, dtype=np.float32) for w in weights])


# p = max_rate * dt = 1: an input at 255 spikes at every step, at 0 never.
EVERY_STEP = dict(max_rate_hz=1000, dt_ms=1)


def test_hand_computed_chain():
    # input 0 (255) -> hidden (w 0.5) -> output (w 1.0); threshold 1, v > theta fires, subtract reset.
    # hidden: v = 0.5, 1.0, 1.5* (0.5), 1.0, 1.5* ... fires at steps 3, 5, 7, 9 (1-based) of 10 -> 4 spikes.
    # output gets 1.0 at each of those steps: 1.0 (no), 2.0* (1.0), 2.0* ... -> spikes at hidden spikes 2, 3, 4 -> 3.
    m = chain([[0.5, 0.5]], [[1.0]])
    r = m.simulate(np.array([[255, 0]], np.uint8), np.array([0]), steps=10, **EVERY_STEP)
    np.testing.assert_array_equal(r.spike_counts, [[10, 4, 3]])
    np.testing.assert_array_equal(r.output_counts, [[3]])
    # SynOps: 10 input spikes x fan-out 1, 4 hidden spikes x 1.
    np.testing.assert_array_equal(r.synops, [[10, 4]])
    assert r.synops_curve[-1] == 14
    assert r.accuracy == 1.0
    assert r.population_sizes == [2, 1, 1]


def test_threshold_and_reset_options_reach_the_engine():
    m = chain([[0.5]])
    x = np.array([[255]], np.uint8)
    # threshold 0.25: v = 0.5 > 0.25 every step -> 10 spikes; reset to zero changes nothing there.
    assert m.simulate(x, steps=10, threshold=0.25, **EVERY_STEP).spike_counts[0, 1] == 10
    # threshold 1, reset to zero: 0.5, 1.0, 1.5* -> 0, 0.5, 1.0, 1.5* ... every 3rd step -> 3 of 10.
    assert m.simulate(x, steps=10, threshold=1, reset="zero", **EVERY_STEP).spike_counts[0, 1] == 3


def test_results_are_views_not_copies():
    m = chain([[0.5, 0.5]], [[1.0]])
    r = m.simulate(np.array([[255, 0]], np.uint8), steps=10, **EVERY_STEP)
    a = r.spike_counts
    assert a.base is not None and not a.flags.writeable
    assert r.accuracy is None and r.accuracy_curve is None
    w = m.weights[0]
    assert w.base is not None and not w.flags.writeable


def test_dataset_arrays_are_views():
    d = snnsim.load_dataset("mnist10k")
    assert d["train_images"].shape == (8004, 28, 28) and d["train_images"].dtype == np.uint8
    assert d["test_labels"].shape == (1996,)
    assert d["test_images"].base is not None and not d["test_images"].flags.writeable


@pytest.mark.parametrize("images, message", [
    (np.zeros((3, 4), np.float64), "dtype float64"),
    (np.zeros((3, 4), np.int32), "dtype int32"),
    (np.zeros((3, 5), np.uint8), "5 values per sample, but the network has 4 inputs"),
    (np.zeros((0, 4), np.uint8), "no samples"),
    (np.zeros((3, 8), np.uint8)[:, ::2], "not C-contiguous"),
    (np.full((3, 4), np.nan, np.float32), "sample 0 value 0 is nan"),
    (np.full((3, 4), 1.5, np.float32), "must lie in [0, 1]"),
])
def test_bad_images(images, message):
    m = chain(np.ones((2, 4)), np.ones((1, 2)))
    with pytest.raises(ValueError) as e:
        m.simulate(images, steps=5)
    assert message in str(e.value)


def test_bad_labels_and_options():
    m = chain(np.ones((2, 4)), np.ones((3, 2)))
    x = np.zeros((3, 4), np.uint8)
    with pytest.raises(ValueError, match="labels have shape"):
        m.simulate(x, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"labels\[1\] is 7; the network has 3 classes"):
        m.simulate(x, np.array([0, 7, 1]))
    with pytest.raises(ValueError, match="did you mean 'simulation.steps'"):
        m.simulate(x, step=5)
    with pytest.raises(ValueError, match="threshold"):
        m.simulate(x, threshold=-1)
    with pytest.raises(TypeError, match="images must be a numpy array"):
        m.simulate([[0, 0, 0, 0]])


def test_bad_weights():
    with pytest.raises(ValueError, match=r"weight\[0, 1\] is nan"):
        snnsim.Model([np.array([[1.0, np.nan]])])
    with pytest.raises(ValueError, match="2-D"):
        snnsim.Model([np.ones(3)])
    with pytest.raises(ValueError, match="floating point"):
        snnsim.Model([np.ones((2, 2), np.int64)])
    with pytest.raises(ValueError, match="layer 1 takes 5 inputs but layer 0 has 3 outputs"):
        snnsim.Model([np.ones((3, 4)), np.ones((2, 5))])  # 5 inputs after 3 outputs
    with pytest.raises(ValueError, match="bias must be a 1-D array of 2 values"):
        snnsim.Model([{"kind": "dense", "weight": np.ones((2, 2)), "bias": np.array([0.0, 0.1, 0.2])}])
    with pytest.raises(ValueError, match=r"bias\[1\] is inf"):
        snnsim.Model([{"kind": "dense", "weight": np.ones((2, 2)), "bias": np.array([0.0, np.inf])}])
    with pytest.raises(ValueError, match="a conv layer needs 'weight'"):
        snnsim.Model([{"kind": "conv", "kernel": 5}])
    with pytest.raises(ValueError, match=r"needs input=\(channels, height, width\)"):
        snnsim.Model([{"kind": "conv", "weight": np.ones((2, 1, 3, 3))}])
    with pytest.raises(ValueError, match="'convv'"):
        snnsim.Model([{"kind": "convv", "weight": np.ones((2, 1, 3, 3))}])
    with pytest.raises(ValueError, match="unknown key 'wieght'"):
        snnsim.Model([{"kind": "dense", "wieght": np.ones((2, 2))}])
    # A zero bias is what a bias-free layer means: accepted. Transposed views are copied in.
    m = snnsim.Model([{"weight": np.ones((4, 2)).T, "bias": np.zeros(2)}])
    assert m.layer_sizes == [4, 2]


def test_missing_files():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        snnsim.Model.load("/nonexistent/weights")
    with pytest.raises(FileNotFoundError, match="config '/nonexistent.toml' does not exist"):
        snnsim.run("/nonexistent.toml")
    with pytest.raises(FileNotFoundError):
        snnsim.load_dataset("/nonexistent/dataset")
    with pytest.raises(FileNotFoundError):
        snnsim.from_onnx("/nonexistent.onnx")


def test_normalise_needs_images_and_a_known_method():
    m = chain(np.ones((2, 4)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="needs images"):
        m.normalise("data")
    with pytest.raises(ValueError, match="'robustt'"):
        m.normalise("robustt", np.zeros((2, 4), np.uint8))
    # model-based by hand: factor = max over neurons of the sum of positive weights: 4 (layer 1).
    n = chain(np.ones((2, 4)), np.ones((3, 2))).normalise("model")
    assert n.normalisation["factors"] == [4.0]
    np.testing.assert_array_equal(n.weights[0], np.full((2, 4), 0.25, np.float32))


def big_model_and_images():
    rng = np.random.default_rng(0)
    model = snnsim.Model([rng.uniform(-0.001, 0.003, (1200, 784)).astype(np.float32),
                          rng.uniform(0.0, 0.0015, (10, 1200)).astype(np.float32)])
    images = rng.integers(0, 256, (2000, 784), dtype=np.uint8)
    return model, images


def test_ctrl_c_raises_keyboard_interrupt_within_a_sample():
    model, images = big_model_and_images()
    t = time.perf_counter()
    model.simulate(images[:4], steps=2000, threads=1)
    per_sample = (time.perf_counter() - t) / 4
    # Uninterrupted this would take about 40 samples' time; Ctrl-C comes after ~5.
    n = 40
    timer = threading.Timer(5 * per_sample, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        model.simulate(images[:n], steps=2000, threads=1)
    elapsed = time.perf_counter() - t
    timer.join()
    assert elapsed < 10 * per_sample, f"stopped after {elapsed:.3f} s, {per_sample:.3f} s per sample"
    # The next call runs normally (the interrupt flag was cleared).
    assert model.simulate(images[:2], steps=10).samples == 2


def test_gil_is_released_during_simulation():
    model, images = big_model_and_images()
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    th = threading.Thread(target=tick)
    t0 = time.perf_counter()
    th.start()
    model.simulate(images[:20], steps=500, threads=1)
    t1 = time.perf_counter()
    done.set()
    th.join()
    during = [t for t in ticks if t0 < t < t1]
    # A held GIL would freeze the ticker for the whole simulation.
    assert t1 - t0 > 0.05
    assert len(during) >= 10, f"{len(during)} ticks in {t1 - t0:.3f} s"


def test_help_and_docstrings():
    assert "steps=200" in snnsim.Model.simulate.__doc__
    assert "results.json" in snnsim.run.__doc__
    assert "[out, in]" in snnsim.Model.__doc__
    assert "spike_counts" in snnsim.Result.__doc__
    assert snnsim.__version__.count(".") == 2
    import pydoc
    assert "normalise" in pydoc.render_doc(snnsim.Model)


def test_from_onnx_names_a_broken_file(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"")
    with pytest.raises(ValueError, match="m.onnx"):
        snnsim.from_onnx(str(f))


def test_per_population_threshold_and_delays():
    # hidden (2 neurons, w 0.5, theta 1): each spikes at steps 3, 5, 7, 9 -> 8 spikes.
    # output (w 1 from each, theta 0.5, delay 2): gets 2.0 at steps 5, 7, 9 (11 is past the end);
    # v: 2 -> spike (1.5), 6: spike (1.0), 7: 3 -> spike (2.5), 8: spike (2.0), 9: 4 -> spike (3.5), 10: spike -> 6.
    m = chain(np.full((2, 2), 0.5), np.ones((1, 2)))
    r = m.simulate(np.array([[255, 0]], np.uint8), steps=10, delays=[0, 2], threshold=[1, 0.5], **EVERY_STEP)
    np.testing.assert_array_equal(r.spike_counts, [[10, 8, 6]])
    with pytest.raises(ValueError, match="'simulation.threshold' has 3 values"):
        m.simulate(np.array([[255, 0]], np.uint8), threshold=[1, 1, 1])
