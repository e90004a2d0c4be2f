"""The examples/ scripts run end to end; their figures are checked against the
CLI's run of the same weights (the independent expectation)."""
import csv
import os
import subprocess
import sys

import numpy as np

from conftest import SOURCE


def test_convert_sweep_example_matches_the_cli(tiny_cli, tmp_path):
    # tiny.toml's simulation (200 images, 50 steps, threshold 1) on the CLI's
    # converted weights: no torch needed.
    p = subprocess.run([sys.executable, str(SOURCE / "examples" / "torch_convert_sweep.py"), "--weights",
                        str(tiny_cli["converted"]), "--samples", "200", "--steps", "50", "--thresholds", "1.0",
                        "2.0", "--out", str(tmp_path)], capture_output=True, text=True, env=os.environ.copy())
    assert p.returncode == 0, f"example failed:\n{p.stdout}\n{p.stderr}"
    with open(tmp_path / "example_sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 50
    one = [r for r in rows if float(r["threshold"]) == 1.0]
    two = [r for r in rows if float(r["threshold"]) == 2.0]
    assert [int(r["steps"]) for r in one] == list(range(1, 51))
    cli = tiny_cli["simulate"]["snn"]
    np.testing.assert_allclose([float(r["accuracy"]) for r in one], cli["accuracy_curve"], atol=5e-7)
    np.testing.assert_allclose([float(r["synops_per_image"]) for r in one], cli["synops_curve"], atol=0.051)
    # A higher threshold means fewer spikes, so fewer SynOps by the last step.
    assert float(two[-1]["synops_per_image"]) < float(one[-1]["synops_per_image"])
    assert "wrote" in p.stdout
