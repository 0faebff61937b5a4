"""``bench perf mkd``: MKD's training, scoring and localization throughput, and peak memory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.table import Table as RichTable

from bench.cli._common import Settings, pass_settings
from bench.errors import UsageError
from bench.perf import PerfOptions, mkd_perf, summary_rows


@click.group()
def perf() -> None:
    """Speed and memory benchmarks."""


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--sizes expects integers separated by commas, got {text!r}") from None
    if not sizes or min(sizes) < 32:
        raise UsageError("--sizes needs sizes of at least 32 px (VGG-16 halves five times)")
    return sizes


@perf.command("mkd")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:K.")
@click.option("--sizes", default="32,128,224", show_default=True, help="Input sizes in pixels.")
@click.option("--images", type=click.IntRange(min=2), default=None,
              help="Images per measurement [default: 256 on CUDA, 16 on the CPU].")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--epochs", type=click.IntRange(min=2), default=3, show_default=True,
              help="Training epochs per measurement (the first one is not counted).")
@click.option("--amp/--no-amp", default=False, show_default=True,
              help="bf16 autocast (CUDA only).")
@click.option("--channels-last/--no-channels-last", default=False, show_default=True,
              help="channels_last memory format (CUDA only).")
@click.option("--loop-images", type=click.IntRange(min=0), default=8, show_default=True,
              help="Images for batched vs per-image localization (0: skip).")
@click.option("--loop-size", type=click.IntRange(min=32), default=128, show_default=True,
              help="Input size of the batched vs per-image localization comparison.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch [default: torch's choice].")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the figures as JSON to this file.")
@click.option("--save", is_flag=True,
              help="Write the JSON to <results>/perf/mkd-<device>-<time>.json.")
@pass_settings
def perf_mkd(settings: Settings, device: str, sizes: str, images: int | None, batch_size: int,
             epochs: int, amp: bool, channels_last: bool, loop_images: int, loop_size: int,
             threads: int | None, output: str | None, save: bool) -> None:
    """Training img/s with the expert cache on and off, scoring and localization img/s."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    options = PerfOptions(sizes=_sizes(sizes), images=images, batch_size=batch_size,
                          epochs=epochs, device=device, amp=amp, channels_last=channels_last,
                          loop_images=loop_images, loop_size=loop_size)
    con = settings.console
    with con.status("measuring", spinner="dots") as status:
        result = mkd_perf(options, step=None if settings.quiet else
                          lambda s: status.update(f"measuring: {s}"))
    rows = summary_rows(result)
    out = RichTable(title=f"MKD on {result['device']} ({result['device_name']}, "
                          f"{result['threads']} threads), images/s",
                    caption="train: steady epochs, expert cache off / on (gain); fill: the "
                            "one-off cache fill; peak: process RSS, or GPU memory on CUDA",
                    header_style="bold")
    for col in rows[0]:
        out.add_column(col, justify="right", no_wrap=True)
    for row in rows:
        out.add_row(*row.values())
    con.print(out)
    con.print(f"process RSS before measuring: {result['baseline_rss_mb']:.0f} MiB")
    if "loop" in result:
        loop = result["loop"]
        con.print(f"localization at {loop['size']} px, {loop['images']} images: batched "
                  f"{loop['batched_img_s']:.1f} img/s, per-image loop {loop['loop_img_s']:.1f} "
                  f"img/s ({loop['speedup']:.1f}x)")
    targets = []
    if output:
        targets.append(Path(output))
    if save:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        targets.append(settings.results_root / "perf" / f"mkd-{result['device']}-{stamp}.json")
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        con.print(f"wrote {path}")
