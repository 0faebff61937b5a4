"""``bench table``: paper-style tables from the records."""

from __future__ import annotations

from pathlib import Path

import click

from bench.aggregate import method_table
from bench.cli._common import Settings, pass_settings
from bench.errors import UsageError
from bench.render import render
from bench.store import Store


@click.command()
@click.option("--suite", "suites", multiple=True, help="Suite(s) to tabulate (default: all).")
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable).")
@click.option("--metric", default="image_auroc", show_default=True,
              help="image_auroc, image_ap, pixel_auroc, pixel_aupro, pixel_auroc_mkd, ...")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex", "csv", "html"]),
              default="markdown", show_default=True)
@click.option("--digits", type=click.IntRange(0, 4), default=1, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of the terminal.")
@pass_settings
def table(settings: Settings, suites: tuple[str, ...], datasets: tuple[str, ...], metric: str,
          fmt: str, digits: int, output: str | None) -> None:
    """One table per dataset: tasks as rows (plus a recomputed Mean), methods as columns."""
    from datasets import DATASETS

    df = Store(settings.results_root).load(list(suites) or None)
    if df.empty:
        where = ", ".join(suites) if suites else "any suite"
        raise UsageError(f"no records for {where} under {settings.results_root / 'runs'}; "
                         "run `bench run` first")
    known_metrics = sorted(df["metric"].dropna().unique())
    if metric not in known_metrics:
        raise UsageError(f"no records have metric {metric!r}; available: "
                         f"{', '.join(known_metrics)}")
    names = list(datasets) or sorted(df["dataset"].unique())
    tables = []
    for name in names:
        order = DATASETS.get(name).tasks() if name in DATASETS else None
        t = method_table(df, name, metric, order)
        if not t.mean.empty:
            tables.append(t)
    if not tables:
        raise UsageError(f"no successful records with {metric} for {', '.join(names)}")
    text = render(tables, fmt, digits)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
        settings.console.print(f"wrote {output}")
    else:
        click.echo(text)
