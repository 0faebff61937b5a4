"""``bench check-method`` and ``bench check-dataset``: the contract checks of
:mod:`bench.testing`, as a table."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
from rich.table import Table as RichTable

from bench.cli._common import Settings, pass_settings
from bench.cli._types import SEED
from bench.core.config import parse_set

if TYPE_CHECKING:
    from bench.testing import CheckReport

_STYLE = {"pass": "green", "FAIL": "bold red", "skip": "yellow"}


def _show(settings: Settings, report: CheckReport) -> None:
    out = RichTable(show_header=True, header_style="bold", title=report.subject)
    out.add_column("check")
    out.add_column("result")
    out.add_column("detail", overflow="fold")
    for c in report.checks:
        out.add_row(c.name, f"[{_STYLE[c.outcome]}]{c.outcome}[/]", c.detail)
    settings.console.print(out)
    settings.console.print(report.summary(), highlight=False)
    if not report.ok:
        sys.exit(1)


@click.command("check-method")
@click.argument("name")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Config value on top of the method's test settings (repeatable).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@pass_settings
def check_method_cmd(settings: Settings, name: str, sets: tuple[str, ...], seed: int) -> None:
    """Check method NAME against the contract on a tiny synthetic task; exit 1 on a failure.

    NAME is a registered name (plugins included) or package.module:Class. The checks are those
    of bench.testing.check_method: declarations, configs, scores, maps, higher = more
    anomalous, determinism, pickling.
    """
    from bench.methods import METHODS  # imported when the command runs: it loads torch
    from bench.testing import check_method

    METHODS.get(name)  # an unknown name, or a broken plugin's, is one line (exit 2)
    report = check_method(name, overrides=parse_set(sets), seed=seed, raise_on_failure=False)
    _show(settings, report)


@click.command("check-dataset")
@click.argument("name")
@click.option("--task", default=None, help="Task to load (default: the first).")
@click.option("--size", type=click.IntRange(min=8), default=32, show_default=True,
              help="Image size asked for (resized to SIZE + 8, centre-cropped to SIZE).")
@pass_settings
def check_dataset_cmd(settings: Settings, name: str, task: str | None, size: int) -> None:
    """Check dataset NAME against the contract on one task; exit 1 on a failure.

    NAME is a registered name (plugins included), folder:/abs/path or package.module:Class;
    the data is read from the data root (--data-root).
    """
    from bench.datasets import DATASETS
    from bench.testing import check_dataset

    DATASETS.get(name)  # an unknown name, or a broken plugin's, is one line (exit 2)
    report = check_dataset(name, root=settings.data_root, task=task, size=size,
                           raise_on_failure=False)
    _show(settings, report)
