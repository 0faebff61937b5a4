"""The ``bench`` command line: one thin command per library call.

Errors a user can cause end in one line (``bench: error: ...``) and a non-zero exit code;
``--debug`` shows the traceback instead.

Commands are loaded lazily (:class:`~bench.cli._lazy.LazyGroup`): ``bench --help`` lists them
from the table below without importing any, and ``bench CMD`` imports only ``CMD``'s module, so
neither imports torch unless the command needs it.
"""

from __future__ import annotations

import click

from bench import __version__
from bench.cli._common import BenchGroup, Settings, configure_logging
from bench.cli._lazy import LazyCommand, LazyGroup
from bench.core.paths import data_root, results_root


class _Main(LazyGroup, BenchGroup):
    """The top-level group: lazy commands, one-line errors."""


# one command per line, so that adding one never conflicts with adding another; the short help
# is the first paragraph of the command's docstring (tests/test_cli_startup.py checks it)
COMMANDS = [
    LazyCommand("list", "bench.cli.inspect:list_cmd",
                "List registered methods, datasets (plugins included) or suites (shipped, then "
                "the ad-hoc suites of the results folder, latest first)."),
    LazyCommand("status", "bench.cli.inspect:status",
                "Done / failed / running / pending jobs per suite, with an ETA."),
    LazyCommand("run", "bench.cli.run:run",
                "Run the jobs of a suite (``--all``, or narrowed by --method/--dataset/--task)."),
    LazyCommand("table", "bench.cli.table:table",
                "One table per dataset (and setting): tasks as rows (plus a recomputed Mean; a "
                "unified table's Pooled row), methods as columns."),
    LazyCommand("plot", "bench.cli.plot:plot",
                "Figures from the records, saved under results/figures/<suite>/."),
    LazyCommand("report", "bench.cli.plot:report",
                "One self-contained HTML page with the suite's tables and figures."),
    LazyCommand("check", "bench.cli.check:check",
                "Compare the suite's records with a baseline; exit 1 on a drop or a rise beyond "
                "the tolerance, a missing or failed job, or a degenerate detector."),
    LazyCommand("baseline", "bench.cli.check:baseline",
                "Manage score baselines for `bench check`."),
    LazyCommand("data", "bench.cli.data:data",
                "Dataset status, download and verification (one data root per machine)."),
    LazyCommand("perf", "bench.cli.perf:perf_cmd",
                "Throughput (img/s) and peak memory of METHOD... at each input size."),
    LazyCommand("check-method", "bench.cli.contract:check_method_cmd",
                "Check method NAME against the contract on a tiny synthetic task; exit 1 on a "
                "failure."),
    LazyCommand("check-dataset", "bench.cli.contract:check_dataset_cmd",
                "Check dataset NAME against the contract on one task; exit 1 on a failure."),
]


@click.group(cls=_Main, commands_lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--results", "results", type=click.Path(file_okay=False), default=None,
              help="Results folder (default: $BENCH_RESULTS or ./results).")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Dataset root (default: $BENCH_DATA_ROOT or ~/.cache/bench/data).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.version_option(__version__, prog_name="bench")
@click.pass_context
def main(ctx: click.Context, results: str | None, data_root: str | None, debug: bool,
         quiet: bool) -> None:
    """Reproduce and benchmark image anomaly detection (MKD and baselines)."""
    configure_logging(debug)
    ctx.obj = Settings(results_root=results_root(results), data_root=_data_root(data_root),
                       debug=debug, quiet=quiet)


_data_root = data_root

__all__ = ["main"]
