"""Plot functions: data in, :class:`matplotlib.figure.Figure` out; they never write files.

Figures are built with the object-oriented API (``Figure`` plus seaborn's ``ax=`` functions), not
``pyplot``: no global figure registry to leak memory in long report runs, and no GUI backend
is ever needed (saving renders through Agg). Values are fractions shown as percentages, like
the tables.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scikit_posthocs as sp
import seaborn as sns
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from bench.records.store import Artifacts
from bench.report.aggregate import DELTA, MEAN_ROW, MEASURED, REFERENCE, Table, is_missing
from bench.report.render import describe_metric

PALETTE = "colorblind"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _wrap(label: str, width: int = 34) -> str:
    """Break long variant labels (``mkd [a=1,b=2]``) after commas."""
    return "\n".join(textwrap.wrap(label.replace(",", ", "), width)) if len(label) > width \
        else label


def _short(metric: str) -> str:
    return metric.replace("_", " ")


#: bar figures: inches per bar and between groups, and the widest figure before tasks wrap into
#: panels stacked vertically (so that ten digits of twelve methods stay readable on a page)
BAR_IN, GROUP_GAP_IN, MAX_WIDTH_IN, PANEL_HEIGHT_IN = 0.14, 0.35, 13.0, 3.2


def bar_layout(n_rows: int, n_cols: int) -> tuple[int, float, float]:
    """(tasks per panel, figure width, figure height) in inches, sized to the bars they hold."""
    group = BAR_IN * max(1, n_cols) + GROUP_GAP_IN
    fits = max(1, min(n_rows, int((MAX_WIDTH_IN - 1.5) // group)))
    panels = -(-n_rows // fits)
    per_panel = -(-n_rows // panels)  # balanced: no panel of a lone Mean
    width = min(MAX_WIDTH_IN, max(6.0, group * per_panel + 1.5))
    return per_panel, width, PANEL_HEIGHT_IN * panels + 0.8


def task_bars(table: Table) -> Figure:
    """Per-task grouped bars, one colour per column; published columns hatched; ± std bars.

    The figure is sized to its bars: beyond :data:`MAX_WIDTH_IN` the tasks wrap into panels
    stacked vertically, all on the same y axis.
    """
    cols = [c for c in table.columns if table.kind(c) != DELTA]
    rows = list(table.mean.index)
    per_panel, width_in, height_in = bar_layout(len(rows), len(cols))
    chunks = [rows[i:i + per_panel] for i in range(0, len(rows), per_panel)]
    fig = _figure(width_in, height_in)
    axes = fig.subplots(len(chunks), 1, squeeze=False, sharey=True)[:, 0]
    # the colour-blind palette has 10 colours: beyond them, 20 distinct ones rather than repeats
    colors = sns.color_palette(PALETTE if len(cols) <= 10 else "tab20", len(cols))
    width = 0.8 / max(1, len(cols))
    finite = 100 * table.mean[cols].astype(float).to_numpy()
    low = np.nanmin(finite) if np.isfinite(finite).any() else 0.0
    for ax, chunk in zip(axes, chunks, strict=True):
        x = np.arange(len(chunk))
        for i, c in enumerate(cols):
            sub = list(chunk)
            means = 100 * table.mean.loc[sub, c].astype(float).to_numpy()
            std = 100 * table.std.loc[sub, c].astype(float).to_numpy()
            n = table.n_seeds.loc[sub, c].astype(float).to_numpy()
            show = ((n > 1) | (table.kind(c) == REFERENCE)) & np.isfinite(std) \
                & np.isfinite(means)
            pos = x + (i - (len(cols) - 1) / 2) * width
            ax.bar(pos, np.nan_to_num(means), width, label=c, color=colors[i],
                   hatch="//" if table.kind(c) == REFERENCE else None,
                   edgecolor="white" if table.kind(c) == MEASURED else "black", linewidth=0.5)
            if show.any():
                ax.errorbar(pos[show], means[show], yerr=std[show], fmt="none", ecolor="black",
                            capsize=2, linewidth=0.8)
            for j in np.flatnonzero(np.isnan(means)):  # a missing value is marked, not drawn as 0
                ax.annotate("n/a", (pos[j], 0), xytext=(0, 3), textcoords="offset points",
                            xycoords=("data", "axes fraction"), ha="center", fontsize=7,
                            rotation=90, va="bottom", color=colors[i])
        labels = [str(r) for r in chunk]
        tilt = max(len(lab) for lab in labels) > 4 and len(chunk) > 6
        ax.set_xticks(x, labels, rotation=40 if tilt else 0, ha="right" if tilt else "center")
        ax.set_xlim(-0.5, per_panel - 0.5)  # every panel at the same scale
        if MEAN_ROW in chunk and chunk.index(MEAN_ROW) > 0:
            ax.axvline(chunk.index(MEAN_ROW) - 0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylim(max(0.0, min(50.0, low - 5)), 100.5)
        ax.set_ylabel(f"{_short(table.metric)} (%)")
        ax.grid(axis="y", alpha=0.3)
    top = axes[0]
    if sum(len(c) for c in cols) < 80:
        top.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.01),
                   ncols=min(len(cols), 6), frameon=False)
    else:  # long variant labels: one per line, wrapped, to the right of the axes
        handles, labels = top.get_legend_handles_labels()
        top.legend(handles, [_wrap(lab) for lab in labels], fontsize=7, loc="upper left",
                   bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(table.title, fontsize=10)
    return fig


def _layer_count(label: str) -> int:
    return len(label.split("+"))


def ablation_lines(tables: Sequence[Table], factor: str) -> Figure:
    """Mean row of each ablation table against the factor's levels, one line per table.

    For ``layers`` the x axis is the number of layers (the paper's Fig. 3): subsets that end with
    the deepest layer (the last k) are joined by a line; other subsets are hollow markers.
    """
    fig = _figure(6.5, 4.0)
    ax = fig.add_subplot()
    colors = sns.color_palette(PALETTE, max(1, len(tables)))
    levels: list[str] = []
    for t in tables:
        levels += [c for c in t.columns if c not in levels]
    for color, t in zip(colors, tables, strict=False):
        mean = 100 * t.mean.loc[MEAN_ROW].astype(float)
        std = 100 * t.std.loc[MEAN_ROW].astype(float)
        methods = sorted(set(t.column_methods.values()))
        name = f"{t.dataset} ({', '.join(methods)})" if methods else t.dataset
        if factor == "layers":
            deepest = max((lab.split("+")[-1] for lab in t.columns), default="")
            suffix = sorted((c for c in t.columns if c.endswith(deepest)), key=_layer_count)
            xs = [_layer_count(c) for c in suffix]
            ax.errorbar(xs, mean[suffix], yerr=std[suffix].fillna(0), marker="o", color=color,
                        label=name, capsize=3)
            for c in t.columns:
                if c not in suffix and not is_missing(mean[c]):
                    ax.plot(_layer_count(c), mean[c], marker="o", mfc="none", color=color)
                    ax.annotate(c, (_layer_count(c), mean[c]), fontsize=7, xytext=(4, -3),
                                textcoords="offset points")
        else:
            xs = [levels.index(c) for c in t.columns]
            ax.errorbar(xs, mean[t.columns], yerr=std[t.columns].fillna(0), marker="o",
                        color=color, label=name, capsize=3)
    if factor == "layers":
        ax.set_xlabel("number of critical layers (joined: the last k; hollow: other subsets)")
        ax.set_xticks(range(1, 1 + max((_layer_count(c) for c in levels), default=1)))
    else:
        ax.set_xlabel(factor)
        ax.set_xticks(range(len(levels)), levels, rotation=30 if len(levels) > 5 else 0)
    metric = tables[0].metric if tables else ""
    ax.set_ylabel(f"mean {_short(metric)} over tasks (%)")
    ax.set_title(f"ablation of {factor}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def method_heatmap(summary: pd.DataFrame, metric: str) -> Figure:
    """Columns × datasets of mean values (``summary`` from :func:`dataset_summary`)."""
    data = 100 * summary.astype(float)
    longest = max((len(str(i)) for i in data.index), default=5)
    fig = _figure(1.2 * len(data.columns) + 0.08 * longest + 3.0, 0.45 * len(data.index) + 1.8)
    ax = fig.add_subplot()
    sns.heatmap(data, annot=True, fmt=".1f", cmap="viridis", vmin=max(0.0, np.nanmin(
        data.to_numpy()) - 5) if data.notna().any().any() else 0, vmax=100, ax=ax,
        cbar_kws={"label": f"{_short(metric)} (%)"}, linewidths=0.5)
    ax.set_xlabel("dataset")
    ax.set_ylabel("method")
    ax.set_title(f"mean {_short(metric)} per dataset (blank: a task is missing)", fontsize=10)
    return fig


def roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str) -> Figure:
    """One ROC curve per entry ``label -> (labels, scores)``, with its AUROC in the legend."""
    fig = _figure(4.8, 4.4)
    ax = fig.add_subplot()
    colors = sns.color_palette(PALETTE, max(1, len(curves)))
    for color, (name, (labels, scores)) in zip(colors, curves.items(), strict=False):
        fpr, tpr, _ = roc_curve(labels, scores)
        auc = float(np.trapezoid(tpr, fpr))
        ax.plot(fpr, tpr, color=color, label=f"{name} ({100 * auc:.1f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def overlays(art: Artifacts, title: str) -> Figure:
    """Kept test images: the image, its mask contour, and the anomaly map over it."""
    if art.maps is None or art.map_index is None:
        raise ValueError("this job kept no anomaly maps")
    k = len(art.map_index)
    fig = _figure(7.0, 2.1 * k + 0.5)
    axes = fig.subplots(k, 3, squeeze=False)
    vmax = float(np.max(art.maps)) if art.maps.size else 1.0
    vmin = float(np.min(art.maps)) if art.maps.size else 0.0
    for row, i in enumerate(art.map_index):
        img = _display_image(art.images[row]) if art.images is not None else None
        mask = art.masks[row] if art.masks is not None else None
        label = "anomaly" if art.labels[i] == 1 else "normal"
        head = "\n".join([*textwrap.wrap(str(art.ids[i]).replace("/", "/ "), 24),
                          f"{label}, score {art.scores[i]:.3g}"]).replace("/ ", "/")
        a0, a1, a2 = axes[row]
        for ax in (a0, a1, a2):
            ax.set_xticks([])
            ax.set_yticks([])
        if img is not None:
            a0.imshow(img, cmap="gray" if img.ndim == 2 else None)
            a1.imshow(img, cmap="gray" if img.ndim == 2 else None)
            a2.imshow(img if img.ndim == 2 else img.mean(axis=2), cmap="gray")
        a0.set_ylabel(head, fontsize=7)
        a2.imshow(art.maps[row], cmap="jet", alpha=0.5 if img is not None else 1.0,
                  vmin=vmin, vmax=vmax)
        if mask is not None and mask.max() >= 0.5:
            a1.contour(mask, levels=[0.5], colors="red", linewidths=1.0)
            a2.contour(mask, levels=[0.5], colors="white", linewidths=0.8)
        if row == 0:
            a0.set_title("test image", fontsize=8)
            a1.set_title("ground-truth mask (red)", fontsize=8)
            a2.set_title("anomaly map (one scale, all rows)", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def _display_image(chw: np.ndarray) -> np.ndarray:
    img = np.asarray(chw)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = np.transpose(img, (1, 2, 0))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return img


def training_curves(history: pd.DataFrame, metric: str, title: str) -> Figure:
    """``metric`` against epoch: a thin line per task, the mean over tasks in bold, per column."""
    h = history[history["metric"] == metric]
    columns = sorted(h["column"].unique())
    fig = _figure(5.0 * max(1, len(columns)), 3.8)
    axes = fig.subplots(1, max(1, len(columns)), squeeze=False, sharey=True)[0]
    for ax, col in zip(axes, columns, strict=False):
        sub = h[h["column"] == col].assign(value=lambda d: 100 * d["value"])
        sns.lineplot(sub, x="epoch", y="value", hue="task", ax=ax, errorbar=None,
                     palette="crest", linewidth=0.8, legend=len(sub["task"].unique()) <= 10)
        mean = sub.groupby("epoch")["value"].mean()
        ax.plot(mean.index, mean.to_numpy(), color="black", linewidth=2, label="mean")
        ax.set_title(col, fontsize=9)
        ax.set_ylabel(f"{_short(metric)} (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend() is not None:
            ax.legend(fontsize=6, ncols=2)
    fig.suptitle(f"{title}: {describe_metric(metric)}", fontsize=9)
    return fig


def cd_diagram(ranks: pd.Series, pvalues: pd.DataFrame, title: str) -> Figure:
    """Critical-difference diagram (scikit_posthocs.critical_difference_diagram): average ranks
    on the axis (1 = best, left), a bar joining columns whose post-hoc p-value is ≥ 0.05 (the
    library's level, :data:`bench.report.stats.ALPHA`).

    The library writes the labels beside the axes, outside them, so the margins are sized here
    from the longest label (a constrained layout would not see them).
    """
    order = ranks.sort_values()
    k = len(order)
    label_in = 0.075 * max(len(f"{c} (0.00)") for c in order.index) + 0.15
    width, height = 4.0 + 2 * label_in, 1.5 + 0.25 * k
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=label_in / width, right=1 - label_in / width,
                        top=1 - 0.75 / height, bottom=0.15 / height)
    ax = fig.add_subplot()
    colors = sns.color_palette(PALETTE if k <= 10 else "husl", k).as_hex()
    sp.critical_difference_diagram(order, pvalues, ax=ax,
                                   label_fmt_left="{label} ({rank:.2f})",
                                   label_fmt_right="({rank:.2f}) {label}",
                                   label_props={"fontsize": 8},
                                   color_palette=dict(zip(order.index, colors, strict=True)))
    fig.suptitle("\n".join(textwrap.wrap(title, int(14 * width))), fontsize=8)
    return fig


def severity_lines(table: Table) -> Figure:
    """A corruption table (:func:`~bench.report.aggregate.corruption_tables`) as lines: the
    metric against severity (0 = clean), one line per corruption and a thick one for their
    mean, ± std over seeds where there are several."""
    fig = _figure(6.5, 4.0)
    ax = fig.add_subplot()
    xs = list(range(len(table.columns)))
    rows = [*table.tasks, MEAN_ROW]
    colors = sns.color_palette(PALETTE, max(1, len(rows)))
    for color, row in zip(colors, rows, strict=False):
        mean = 100 * table.mean.loc[row].astype(float)
        std = 100 * table.std.loc[row].astype(float)
        mean_row = row == MEAN_ROW
        ax.errorbar(xs, mean.to_numpy(), yerr=std.fillna(0).to_numpy(), marker="o",
                    color="black" if mean_row else color, capsize=3,
                    linewidth=2.5 if mean_row else 1.2,
                    label="mean over corruptions" if mean_row else row)
    ax.set_xticks(xs, ["clean" if c == "clean" else str(c) for c in table.columns])
    ax.set_xlabel("severity (ImageNet-C levels; 0 = clean)")
    ax.set_ylabel(f"{_short(table.metric)} (%)")
    ax.set_title(_wrap(table.title, 70), fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig
