"""Shared fixtures: where the build and the sources are, and one CLI run of
configs/tiny.toml (run, convert, simulate) that the Python results are
compared against."""
import json
import os
import pathlib
import subprocess

import pytest

SOURCE = pathlib.Path(os.environ.get("SNNSIM_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
BINARY = pathlib.Path(os.environ.get("SNNSIM_BINARY_DIR", SOURCE / "build"))
SNNSIM = BINARY / "snnsim"
TINY = SOURCE / "configs" / "tiny.toml"


def cli(*args):
    """Runs the snnsim CLI; fails the test with its output if it fails."""
    p = subprocess.run([str(SNNSIM), *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, f"snnsim {' '.join(map(str, args))} failed:\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="session")
def tiny_cli(tmp_path_factory):
    """CLI runs of tiny.toml with a private weight cache: run, convert, simulate."""
    root = tmp_path_factory.mktemp("tiny")
    cache = root / "cache"
    common = ["--quiet", "--set", f'output.cache="{cache}"']
    cli("run", TINY, "--out", root / "run", *common)
    cli("convert", TINY, "--out", root / "convert", *common)
    cli("simulate", TINY, "--out", root / "simulate", *common, "--set", f'network.weights="{root / "convert" / "weights"}"')
    ann = [d for d in cache.iterdir() if (d / "manifest.json").exists()]
    assert len(ann) == 1
    return {
        "root": root,
        "cache": cache,
        "ann": ann[0],
        "converted": root / "convert" / "weights",
        "run": json.loads((root / "run" / "results.json").read_text()),
        "simulate": json.loads((root / "simulate" / "results.json").read_text()),
    }
