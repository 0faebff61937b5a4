"""``bench data status|fetch|verify``: where the datasets are, getting them, checking them."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TransferSpeedColumn
from rich.table import Table as RichTable

from bench.cli._common import Settings, pass_settings
from bench.cli._types import number

if TYPE_CHECKING:
    from bench.datasets.download import Reachability

# the datasets (and torch) are imported when a command runs, not for its --help; these are
# ExtractLimits()'s defaults (tests/test_cli_startup.py checks that they are)
MAX_EXTRACT_GIB = 64.0
MAX_MEMBERS = 1_000_000
MAX_RATIO = 1000.0


@click.group("data")
def data() -> None:
    """Dataset status, download and verification (one data root per machine)."""


@data.command("status")
@click.argument("names", nargs=-1)
@pass_settings
def status_cmd(settings: Settings, names: tuple[str, ...]) -> None:
    """Each dataset: found or missing, path, file counts, last verification."""
    from bench.datasets import DATASETS
    from bench.datasets.manage import status

    out = RichTable(show_header=True, header_style="bold",
                    title=f"data root: {settings.data_root}")
    for col in ("dataset", "state", "path", "counts", "checksum"):
        out.add_column(col, overflow="fold")
    colour = {"found": "green", "missing": "red", "damaged": "red", "embedded": "cyan"}
    for name in names or tuple(DATASETS.names()):
        row = status(name, DATASETS.get(name), settings.data_root)
        out.add_row(row.name, f"[{colour[row.state]}]{row.state}[/]", row.path, row.counts,
                    row.checksum)
    settings.console.print(out)


@data.command("fetch")
@click.argument("name")
@click.option("--archive", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Unpack an archive you downloaded (checksum checked if known).")
@click.option("--from", "source", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None,
              help="A folder with a local copy of the official files (mnist, fashion_mnist: the "
                   "four idx files, .gz or extracted; cifar10: cifar-10-python.tar.gz or its "
                   "batches): linked into the data root, .gz decompressed, nothing downloaded.")
@click.option("--accept-license", is_flag=True,
              help="You accepted the dataset's licence: download its archive (MVTec AD, "
                   "MVTec LOCO, BTAD).")
@click.option("--url", default=None, help="Download the archive from this URL instead.")
@click.option("--sha256", default=None, help="Expected sha256 of --url/--archive, if not known.")
@click.option("--keep-archive", is_flag=True, help="Keep the downloaded archive after unpacking.")
@click.option("--max-extract-gib", type=number(min=0, min_open=True),
              default=MAX_EXTRACT_GIB, show_default=True,
              help="Refuse an archive whose files add up to more GiB.")
@click.option("--max-members", type=click.IntRange(min=1), default=MAX_MEMBERS,
              show_default=True, help="Refuse an archive with more members.")
@click.option("--max-ratio", type=number(min=1), default=MAX_RATIO,
              show_default=True,
              help="Refuse a zip member, or a tar archive, that expands more times.")
@pass_settings
def fetch_cmd(settings: Settings, name: str, archive: Path | None, source: Path | None,
              accept_license: bool, url: str | None, sha256: str | None, keep_archive: bool,
              max_extract_gib: float, max_members: int, max_ratio: float) -> None:
    """Get dataset NAME into the data root, or print the manual steps it needs.

    Archives are unpacked only after checking every member: no absolute path, no `..`, no
    link, and within the --max-* limits (against compression bombs; the defaults are far
    above every supported dataset).
    """
    from bench.datasets import DATASETS
    from bench.datasets.download import ExtractLimits
    from bench.datasets.manage import fetch

    ds = DATASETS.get(name)
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), console=settings.err, disable=settings.quiet)
    task: list[TaskID] = []

    def progress(done: int, total: int | None) -> None:
        if not task:  # start the bar only when a download really begins
            bar.start()
            task.append(bar.add_task(f"downloading {name}", total=total))
        bar.update(task[0], completed=done, total=total)

    try:
        result = fetch(ds, settings.data_root, archive=archive, url=url, sha256=sha256,
                       accept_license=accept_license, keep_archive=keep_archive,
                       progress=progress,
                       limits=ExtractLimits(int(max_extract_gib * 2**30), max_members, max_ratio),
                       local=source)
    finally:
        bar.stop()
    settings.console.print(result.message, highlight=False, soft_wrap=True)
    if not result.fetched:
        settings.console.print(f"{name} is not in {result.path} yet: follow the steps above.",
                               highlight=False, soft_wrap=True)
        sys.exit(1)


@data.command("urls")
@click.argument("names", nargs=-1)
@click.option("--check", is_flag=True,
              help="Ask each address whether it answers (headers only, nothing downloaded); "
                   "exit 1 if one does not.")
@click.option("--timeout", type=number(min=0, min_open=True), default=15.0,
              show_default=True, help="Seconds to wait for each address with --check.")
@pass_settings
def urls_cmd(settings: Settings, names: tuple[str, ...], check: bool, timeout: float) -> None:
    """Every download address: of datasets NAMES (default: all) and of the ImageNet weights.

    Mirrors are listed each; a dataset with none is fetched by hand (see bench data fetch).
    """
    from bench.datasets import DATASETS
    from bench.datasets.download import reachable
    from bench.datasets.stored import StoredDataset
    from bench.methods import backbones

    rows = [(name, url) for name in names or tuple(DATASETS.names())
            if isinstance(ds := DATASETS.get(name), StoredDataset) for url in ds.download_urls()]
    if not names:
        rows += [(f"{backbone} weights", url) for backbone, url in backbones.weight_urls().items()]
    out = RichTable(show_header=True, header_style="bold", title="download addresses")
    for col in ("what", "url", *(("answer", "size") if check else ())):
        out.add_column(col, overflow="fold")
    failed: list[Reachability] = []
    with settings.console.status("asking", spinner="dots") if check else nullcontext():
        for what, url in rows:
            if not check:
                out.add_row(what, url)
                continue
            r = reachable(url, timeout=timeout)
            failed += [] if r.ok else [r]
            answer = f"[green]{r.status}[/]" if r.ok else f"[red]{r.error or r.status}[/]"
            size = "–" if r.size is None else f"{r.size / 2**20:,.1f} MiB"
            out.add_row(what, url, answer, size)
    settings.console.print(out)
    if check:
        settings.console.print(f"{len(rows) - len(failed)} of {len(rows)} address(es) answer",
                               highlight=False)
        if failed:
            sys.exit(1)


@data.command("verify")
@click.argument("name")
@pass_settings
def verify_cmd(settings: Settings, name: str) -> None:
    """Check NAME's file counts (and checksums where known) against the shipped manifest."""
    from bench.datasets import DATASETS
    from bench.datasets.stored import StoredDataset

    ds = DATASETS.get(name)
    if not isinstance(ds, StoredDataset):
        settings.console.print(f"{name} ships with the code: nothing to verify")
        return
    report = ds.verify(settings.data_root)
    out = RichTable(show_header=True, header_style="bold", title=f"{name}: {report.path}")
    for col in ("item", "expected", "found", "state"):
        out.add_column(col)
    colour = {"ok": "green", "unknown": "yellow", "mismatch": "red", "missing": "red",
              "recompressed": "yellow"}
    for c in report.checks:
        out.add_row(c.item, c.expected, c.found, f"[{colour[c.state]}]{c.state}[/]")
    settings.console.print(out)
    for note in report.notes:
        settings.console.print(f"note: {note}", highlight=False)
    settings.console.print(f"{name}: {report.summary()}", highlight=False)
    if not report.ok:
        sys.exit(1)
