"""The example plugin, examples/bench-plugin-example, as CI installs it (``.ci/run``): listed,
passing the contract checks, and run in a suite beside MKD with its provenance in the records.
Skipped where it is not installed (``pip install ./examples/bench-plugin-example``)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.records.store import Store
from bench.testing import check_dataset, check_method
from tests.conftest import invoke

DIST = "bench-plugin-example"
try:
    VERSION = metadata.version(DIST)
except metadata.PackageNotFoundError:
    VERSION = None

pytestmark = pytest.mark.skipif(VERSION is None, reason=f"{DIST} is not installed "
                                "(pip install ./examples/bench-plugin-example)")


def fake_csv_images(root: Path, tasks: tuple[str, ...] = ("cans",), n_train: int = 8,
                    n_test: int = 6, size: int = 40) -> Path:
    """``<root>/csv_images/labels.csv`` and tiny PNGs: grey noise, anomalies with a bright
    square."""
    base = root / "csv_images"
    rng = np.random.default_rng(0)
    lines = ["image,split,label,task"]
    for task in tasks:
        (base / task).mkdir(parents=True)
        for split, n in (("train", n_train), ("test", n_test)):
            for i in range(n):
                label = int(split == "test" and i >= n // 2)
                img = rng.normal(110, 8, size=(size, size, 3)).clip(0, 255)
                if label:
                    img[10:22, 12:24] = 250
                path = f"{task}/{split}-{i}.png"
                Image.fromarray(img.astype(np.uint8)).save(base / path)
                lines.append(f"{path},{split},{label},{task}")
    (base / "labels.csv").write_text("\n".join(lines) + "\n")
    return base


def test_it_is_listed_with_its_distribution_and_version(cli, results, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    assert {"example_distance", "example_distance_max"} <= set(METHODS.names())
    assert "csv_images" in DATASETS.names()
    origin = METHODS.origin("example_distance")
    assert origin is not None and (origin.distribution, origin.version) == (DIST, VERSION)
    for what, name in (("methods", "example_distance_max"), ("datasets", "csv_images")):
        res = invoke(cli, results, "list", what)
        assert res.exit_code == 0 and name in res.output and f"{DIST} {VERSION}" in res.output
        assert "warning" not in res.output


@pytest.mark.parametrize("name", ["example_distance", "example_distance_max"])
def test_its_methods_pass_the_contract(name):
    check_method(name)


def test_its_dataset_passes_the_contract(tmp_path):
    fake_csv_images(tmp_path, tasks=("cans", "jars"))
    report = check_dataset("csv_images", root=tmp_path, task="jars")
    assert report.ok and all(c.passed for c in report.checks)


def test_it_runs_in_a_suite_beside_mkd(cli, results, tmp_path):
    fake_csv_images(tmp_path)
    suite = tmp_path / "versus.yaml"
    suite.write_text(
        "name: versus\nseeds: [0]\ndatasets: {csv_images: all, digits: ['3']}\n"
        "methods:\n  mkd: {expert_weights: random, epochs: 2, image_size: 32}\n"
        "  example_distance: {}\n")
    res = invoke(cli, results, "run", "--suite", str(suite), "--all", "--jobs", "2",
                 data_root=tmp_path)
    assert res.exit_code == 0, res.output
    recs = {(r.job.method, r.job.dataset): r for r in Store(results).records("versus")}
    assert len(recs) == 4 and all(r.ok for r in recs.values())
    mine = recs["example_distance", "csv_images"]
    assert mine.plugin == {"distribution": DIST, "version": VERSION,
                           "object": "bench_plugin_example.method:RandomFeatureDistance"}
    assert mine.dataset_plugin is not None and mine.dataset_plugin["distribution"] == DIST
    assert recs["mkd", "csv_images"].plugin is None
    assert recs["mkd", "digits"].plugin is None and recs["mkd", "digits"].dataset_plugin is None
    assert mine.metrics["image_auroc"] > 0.9  # a bright square is an obvious anomaly
    table = invoke(cli, results, "table", "--suite", str(suite), "--dataset", "csv_images",
                   data_root=tmp_path)
    assert table.exit_code == 0
    assert "example_distance" in table.output and "mkd" in table.output


def test_an_ad_hoc_run_against_mkd(cli, results, tmp_path):
    fake_csv_images(tmp_path)
    res = invoke(cli, results, "run", "--method", "example_distance", "--method", "mkd",
                 "--dataset", "csv_images", "--set", "expert_weights=random", "--set",
                 "epochs=2", "--set", "image_size=32", data_root=tmp_path)
    assert res.exit_code == 0, res.output
    table = invoke(cli, results, "table", "--suite", "adhoc", data_root=tmp_path)
    assert table.exit_code == 0 and "example_distance" in table.output
