"""What ``bench perf`` shows of a result: rows for a table, sentences for the loop comparison.

Pure functions from the JSON-ready result of :func:`bench.perf.measure.perf` to strings; the
CLI prints them.
"""

from __future__ import annotations

from typing import Any


def _fmt(value: float | None, digits: int = 1) -> str:
    """A figure with ``digits`` decimals below 100, none above; ``–`` when there is none."""
    if value is None:
        return "–"
    return f"{value:.{digits if abs(value) < 100 else 0}f}"


def summary_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """One printable row per method and size; the method column only for several methods,
    the expert-cache columns only when a method has the cache."""
    several = len(result["methods"]) > 1
    cache = any("train_cache_on" in r for e in result["methods"].values()
                for r in e["sizes"].values())
    rows = []
    for name, entry in result["methods"].items():
        for size, r in entry["sizes"].items():
            first = r.get("train_cache_off") or r["train"]
            cached = r.get("train_cache_on")
            mem = r.get("peak_gpu_mb") or r["peak_rss_mb"]
            row = {"method": name} if several else {}
            row.update({"px": size, "train": _fmt(first["img_s"])})
            if cache:
                gain = r.get("train_speedup_cache")
                row.update({"train+cache": _fmt(cached and cached["img_s"]),
                            "gain": "–" if gain is None else f"{gain:.1f}x",
                            "fill s": _fmt(cached and cached["cache_fill_s"], 2)})
            row.update({"score": _fmt(r["score_img_s"]),
                        "localize": _fmt(r["localization_img_s"]),
                        "peak MiB": f"{max(v for v in mem.values() if v is not None):.0f}"})
            rows.append(row)
    return rows


def loop_lines(result: dict[str, Any]) -> list[str]:
    """One sentence per batched vs per-image comparison."""
    lines = []
    for name, entry in result["methods"].items():
        loop = entry.get("loop")
        if not loop:
            continue
        text = (f"{name} localization at {loop['size']} px, {loop['images']} images: batched "
                f"{loop['batched_img_s']:.1f} img/s, per-image loop {loop['loop_img_s']:.1f} "
                f"img/s ({loop['speedup']:.1f}x)")
        if "official_loop_img_s" in loop:
            text += (f", the official code's per-image procedure "
                     f"{loop['official_loop_img_s']:.1f} img/s "
                     f"({loop['speedup_vs_official']:.1f}x)")
        lines.append(text)
    return lines
