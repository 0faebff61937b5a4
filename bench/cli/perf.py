"""``bench perf METHOD...``: fit, scoring and localization throughput, and peak memory."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table as RichTable

from bench.cli._common import Settings, pass_settings
from bench.cli._types import number
from bench.core.config import parse_set
from bench.core.errors import UsageError
from bench.perf.compare import SpeedComparison, compare_speed
from bench.perf.summary import loop_lines, summary_rows


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--sizes expects integers separated by commas, got {text!r}") from None
    if not sizes or min(sizes) < 32:
        raise UsageError("--sizes needs sizes of at least 32 px (VGG-16 halves five times)")
    return sizes


@click.command("perf")
@click.argument("methods", nargs=-1, required=True, metavar="METHOD...")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:K.")
@click.option("--sizes", default="32,128,224", show_default=True, help="Input sizes in pixels.")
@click.option("--images", type=click.IntRange(min=2), default=None,
              help="Images per measurement [default: 256 on CUDA, 16 on the CPU].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Batch size [default: each method's own; MKD 64].")
@click.option("--epochs", type=click.IntRange(min=2), default=3, show_default=True,
              help="Training epochs of the deep methods (the first one is not counted).")
@click.option("--amp/--no-amp", default=False, show_default=True,
              help="bf16 autocast (CPU and CUDA; methods with an 'amp' option).")
@click.option("--channels-last/--no-channels-last", default=False, show_default=True,
              help="channels_last memory format (CPU and CUDA; methods with that option).")
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True,
              help="torch.compile the networks (methods with a 'compile' option: MKD).")
@click.option("--loop-images", type=click.IntRange(min=0), default=8, show_default=True,
              help="Images for batched vs per-image localization (0: skip).")
@click.option("--loop-size", type=click.IntRange(min=32), default=128, show_default=True,
              help="Input size of the batched vs per-image localization comparison.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch [default: torch's choice].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Config override for the methods that have the field (repeatable).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the figures as JSON to this file.")
@click.option("--save", is_flag=True,
              help="Write the JSON to <results>/perf/<methods>-<device>-<time>.json.")
@click.option("--compare", "compare_to", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="A saved result (-o/--save) to compare with; exit 1 when a "
                                   "figure is slower by more than --max-slowdown.")
@click.option("--max-slowdown", type=number(min=0, max=1, min_open=True, max_open=True),
              default=0.25, show_default=True,
              help="With --compare: the slowdown (a fraction) that counts as a regression.")
@pass_settings
def perf_cmd(settings: Settings, methods: tuple[str, ...], device: str, sizes: str,
             images: int | None, batch_size: int | None, epochs: int, amp: bool,
             channels_last: bool, compile_: bool, loop_images: int, loop_size: int,
             threads: int | None, sets: tuple[str, ...], output: str | None,
             save: bool, compare_to: str | None, max_slowdown: float) -> None:
    """Throughput (img/s) and peak memory of METHOD... at each input size.

    METHOD is a registered name, a pattern ('padim*') or 'all' (the demo suite's methods).
    Figures: fit (steady epochs of the deep methods, the whole fit of the others; MKD with its
    expert cache off and on), scoring without maps, localization (scoring with maps), and, at
    --loop-size, batched vs per-image localization. Synthetic images, random weights.
    """
    import torch  # imported when measuring, not for --help

    from bench.perf.measure import PerfOptions, perf, resolve_methods

    baseline = _read_result(compare_to) if compare_to else None
    if threads is not None:
        torch.set_num_threads(threads)
    names = resolve_methods(methods)
    options = PerfOptions(sizes=_sizes(sizes), images=images, batch_size=batch_size,
                          epochs=epochs, device=device, amp=amp, channels_last=channels_last,
                          compile=compile_, loop_images=loop_images, loop_size=loop_size,
                          extra=parse_set(sets))
    con = settings.console
    with con.status("measuring", spinner="dots") as status:
        result = perf(names, options, step=None if settings.quiet else
                      lambda s: status.update(f"measuring: {s}"))
    rows = summary_rows(result)
    out = RichTable(title=f"{', '.join(names)} on {result['device']} ({result['device_name']}, "
                          f"{result['threads']} threads), images/s",
                    caption="train: steady epochs (deep methods) or the whole fit; MKD: expert "
                            "cache off / on (gain), fill: the one-off cache fill; localize: "
                            "scoring with maps; peak: process RSS, or GPU memory on CUDA",
                    header_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                    pad_edge=False, collapse_padding=True)
    for col in rows[0]:
        out.add_column(col, justify="right" if col != "method" else "left", no_wrap=True)
    for row in rows:
        out.add_row(*row.values())
    con.print(out)
    con.print(f"process RSS before measuring: {result['environment']['baseline_rss_mb']:.0f} MiB")
    for line in loop_lines(result):
        con.print(line, highlight=False)
    targets = []
    if output:
        targets.append(Path(output))
    if save:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        label = names[0] if len(names) == 1 else f"{len(names)}-methods"
        targets.append(settings.results_root / "perf" / f"{label}-{result['device']}-{stamp}.json")
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        con.print(f"wrote {path}")
    if baseline is not None and compare_to is not None:
        _report_comparison(settings, compare_speed(result, baseline, max_slowdown), compare_to)


def _read_result(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--compare: no such file: {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"--compare: {path} is not a readable perf result ({exc})") from None
    if not isinstance(data, dict) or data.get("benchmark") != "perf":
        raise UsageError(f"--compare: {path} is not a result of bench perf")
    return data


def _report_comparison(settings: Settings, cmp: SpeedComparison, path: str) -> None:
    con = settings.console
    out = RichTable(title=f"against {path} (slowest first)", header_style="bold",
                    box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("method", "px", "figure", "baseline img/s", "now img/s", "change"):
        out.add_column(col, justify="left" if col in ("method", "figure") else "right")
    limit = 1.0 - cmp.max_slowdown
    for c in cmp.changes:
        change = f"{(c.ratio - 1) * 100:+.0f}%"
        out.add_row(c.method, c.size, c.figure, f"{c.baseline:.3g}", f"{c.current:.3g}",
                    f"[red]{change}[/red]" if c.ratio < limit else change)
    con.print(out)
    for diff in cmp.differences:
        con.print(f"[yellow]not the same setting[/yellow] {diff}", highlight=False)
    if not cmp.changes:
        raise UsageError(f"--compare: {path} has none of the figures measured now")
    if cmp.missing:
        con.print(f"{len(cmp.missing)} figure(s) of the baseline not measured now", highlight=False)
    if cmp.ok:
        con.print(f"perf check: PASS ({len(cmp.changes)} figure(s), none slower by more than "
                  f"{cmp.max_slowdown:.0%})", highlight=False)
        return
    con.print(f"perf check: FAIL ({len(cmp.regressions)} of {len(cmp.changes)} figure(s) slower "
              f"by more than {cmp.max_slowdown:.0%})", highlight=False)
    sys.exit(1)
