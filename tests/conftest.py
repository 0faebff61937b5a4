"""Shared fixtures: RNG state restored after every test, a CliRunner, temporary results."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner


@pytest.fixture(autouse=True)
def _restore_rng_state() -> Iterator[None]:
    """Tests may seed global RNGs; put them back so test order never matters."""
    py = random.getstate()
    npy = np.random.get_state()
    th = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    yield
    random.setstate(py)
    np.random.set_state(npy)
    torch.random.set_rng_state(th)
    torch.set_num_threads(threads)


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


def run_mini_suite(cli: CliRunner, results: Path, folder: Path,
                   methods: str = "{ocsvm: {}, kde: {}}") -> Path:
    """Write suite ``mini`` (digits 0 and 3, seed 0, ``methods`` as YAML) under ``folder``, run
    it, and return its file."""
    suite = folder / "mini.yaml"
    suite.write_text("name: mini\nseeds: [0]\ndatasets: {digits: ['0', '3']}\n"
                     f"methods: {methods}\n")
    assert invoke(cli, results, "run", "--suite", str(suite), "--all").exit_code == 0
    return suite


def invoke(cli: CliRunner, results: Path, *args: str, data_root: Path | None = None):
    """Run ``bench --results RESULTS ARGS`` and return the click Result."""
    base = ["--results", str(results), "--quiet"]
    if data_root is not None:
        base += ["--data-root", str(data_root)]
    return cli.invoke(__import__("bench.cli", fromlist=["main"]).main, [*base, *args],
                      catch_exceptions=False)
