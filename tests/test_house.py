"""The house: import names that coexist with other libraries, one layout for tools and installs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _dummy_packages(where: Path) -> None:
    """Top-level packages named like ours, as another library would install them."""
    for name in ("datasets", "methods"):
        pkg = where / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(f"WHO = 'another library named {name}'\n")


def test_bench_works_beside_other_packages_named_datasets_and_methods(tmp_path):
    _dummy_packages(tmp_path)  # first on the path: `python -m` puts the working folder first
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_RESULTS": str(tmp_path / "results")}

    def bench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bench", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)

    listed = bench("list", "datasets")
    assert listed.returncode == 0, listed.stderr
    assert "digits" in listed.stdout and "textures" in listed.stdout
    ran = bench("-q", "run", "--suite", "demo", "--method", "ocsvm", "--dataset", "digits",
                "--task", "3")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    records = list((tmp_path / "results" / "runs" / "demo").glob("*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["status"] == "ok"
    # ... and the other library's packages still import as themselves
    probe = subprocess.run(
        [sys.executable, "-c", "import datasets, methods, bench.datasets, bench.methods; "
                               "print(datasets.WHO, '|', methods.WHO)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert probe.stdout.strip() == ("another library named datasets | "
                                    "another library named methods"), probe.stderr


def test_only_bench_is_installed_at_the_top_level():
    try:
        dist = metadata.distribution("bench-mkd")
    except metadata.PackageNotFoundError:
        pytest.skip("bench-mkd is not installed in this environment")
    # bench_anomalib: the anomalib plugin shipped in this distribution (plugins/anomalib)
    assert sorted((dist.read_text("top_level.txt") or "").split()) in (
        ["bench"], ["bench", "bench_anomalib"])


def test_the_links_tools_read_match_the_install_mapping():
    """setuptools installs methods/ and datasets/ as bench.methods and bench.datasets; the
    links in bench/ show mypy, import-linter and pytest the same files at the same names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    assert mapping == {"bench.methods": "methods", "bench.datasets": "datasets",
                       "bench_anomalib": "plugins/anomalib/bench_anomalib"}
    for package, folder in mapping.items():
        if not package.startswith("bench."):
            assert (ROOT / folder / "__init__.py").is_file()  # a top-level package, no link
            continue
        link = ROOT / "bench" / package.split(".", 1)[1]
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve()
