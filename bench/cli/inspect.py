"""``bench list`` and ``bench status``."""

from __future__ import annotations

import click
from rich.table import Table as RichTable

from bench.cli._common import Settings, pass_settings
from bench.errors import BenchError, UsageError
from bench.runner import plan
from bench.select import select_jobs
from bench.store import Store
from bench.suites import load_suite, suite_names


@click.command("list")
@click.argument("what", type=click.Choice(["methods", "datasets", "suites"]))
@pass_settings
def list_cmd(settings: Settings, what: str) -> None:
    """List registered methods, datasets or shipped suites."""
    out = RichTable(show_header=True, header_style="bold")
    if what == "methods":
        from methods import METHODS

        out.add_column("method")
        out.add_column("class")
        out.add_column("variant")
        out.add_column("summary")
        for name in METHODS.names():
            spec = METHODS.get(name)
            variant = ", ".join(f"{k}={v}" for k, v in spec.defaults.items())
            out.add_row(name, spec.cls.__name__, variant, spec.summary)
    elif what == "datasets":
        from datasets import DATASETS

        out.add_column("dataset")
        out.add_column("tasks")
        out.add_column("masks")
        out.add_column("source")
        for name in DATASETS.names():
            ds = DATASETS.get(name)
            try:
                tasks = ds.tasks_in(settings.data_root)
            except BenchError:  # folder datasets list what is on disk
                tasks = []
            shown = ", ".join(tasks[:6]) + (f", … ({len(tasks)})" if len(tasks) > 6 else "")
            shown = shown or "(its sub-folders)"
            out.add_row(name, shown, "yes" if ds.has_masks else "no", ds.info.source)
    else:
        out.add_column("suite")
        out.add_column("seeds")
        out.add_column("methods")
        out.add_column("datasets")
        for name in suite_names():
            s = load_suite(name)
            out.add_row(name, ",".join(map(str, s.seeds)), ", ".join(s.method_names()),
                        ", ".join(s.dataset_names()))
    settings.console.print(out)


@click.command()
@click.option("--suite", "suites", multiple=True, help="Suite(s) to report (default: all).")
@pass_settings
def status(settings: Settings, suites: tuple[str, ...]) -> None:
    """Done / failed / pending jobs per suite, with recorded time."""
    store = Store(settings.results_root)
    names = list(suites) or suite_names()
    out = RichTable(show_header=True, header_style="bold")
    for col in ("suite", "jobs", "done", "failed", "pending", "recorded time"):
        out.add_column(col, justify="right" if col != "suite" else "left")
    for name in names:
        try:
            suite, jobs = select_jobs(name, check_data=False)
        except UsageError as exc:
            if suites:  # asked for by name: the user needs the reason
                raise
            out.add_row(name, "–", "–", "–", "–", f"unavailable: {exc}")
            continue
        todo, done, failed = plan(jobs, store)
        summ = store.summary(suite.name)
        secs = float(summ["total_s"].fillna(0).sum()) if len(summ) else 0.0
        out.add_row(suite.name, str(len(jobs)), str(len(done)), str(len(failed)),
                    str(len(todo)), f"{secs / 60:.1f} min")
    settings.console.print(out)
