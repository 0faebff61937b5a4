"""The ``bench`` command line: one thin command per library call.

Errors a user can cause end in one line (``bench: error: ...``) and a non-zero exit code;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import click

from bench import __version__
from bench.cli._common import BenchGroup, Settings, configure_logging
from bench.core.paths import data_root, results_root


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
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

from bench.cli import check as _check  # noqa: E402
from bench.cli import contract as _contract  # noqa: E402
from bench.cli import data as _data  # noqa: E402
from bench.cli import inspect as _inspect  # noqa: E402
from bench.cli import perf as _perf  # noqa: E402
from bench.cli import plot as _plot  # noqa: E402
from bench.cli import run as _run  # noqa: E402
from bench.cli import table as _table  # noqa: E402

# one command per line, so that adding one never conflicts with adding another
COMMANDS = [
    _inspect.list_cmd,
    _inspect.status,
    _run.run,
    _table.table,
    _plot.plot,
    _plot.report,
    _check.check,
    _check.baseline,
    _data.data,
    _perf.perf_cmd,
    _contract.check_method_cmd,
    _contract.check_dataset_cmd,
]
for _cmd in COMMANDS:
    main.add_command(_cmd)

__all__ = ["main"]
