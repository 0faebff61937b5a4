"""Where data and results live: one data root per machine, one results folder per project.

- Data root: ``--data-root``, else ``$BENCH_DATA_ROOT``, else ``~/.cache/bench/data``. Each dataset
  lives in a folder named after it below the root (``<root>/mvtec``, ``<root>/cifar10``, ...).
- Results: ``--results``, else ``$BENCH_RESULTS``, else ``./results`` (records in ``runs/``).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "BENCH_DATA_ROOT"
RESULTS_ENV = "BENCH_RESULTS"


def data_root(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/bench/data").expanduser()


def results_root(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env).expanduser()
    return Path("results")
