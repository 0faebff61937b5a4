"""Statistics over methods × tasks: average ranks, the Friedman test, Nemenyi and Wilcoxon–Holm
post-hoc comparisons, and a bootstrap interval of one job's image AUROC.

A bold cell says which number is largest, not whether the difference is real. Everything here is
computed by well-kept libraries (scipy, scikit-posthocs, statsmodels); this module only chooses
the data honestly and refuses (:class:`~bench.core.errors.UsageError`, one line) when a statistic
cannot be computed honestly.

The unit of analysis is the **task** (a class of a dataset): seeds are averaged per (column,
task) first, the same cells as the tables, so seeds never pose as independent tasks. A *scope* is
one dataset, or all datasets at once (tasks named ``dataset/task``). A scope with a missing cell
(a column without a value on a task) is refused unless the caller asks to drop such tasks, and
then the caption lists them. A scope whose cells rest on different numbers of seeds (1 on one
task, 3 on another) is refused too unless asked for (``allow_unequal_seeds``, as the score
tables' Mean), and the caption says so. Higher metric values are better (rank 1 = highest).

When the Friedman test is not significant at :data:`ALPHA`, the ranks table says so and gives
no critical difference to read, and the diagram joins every column (no post-hoc test is run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from scipy import stats
from statsmodels.stats.multitest import multipletests

from bench.core.errors import UsageError
from bench.report.aggregate import column_labels, order_tasks

#: the significance level of the post-hoc comparisons and the critical difference (also the level
#: at which scikit-posthocs' diagram joins columns: its default)
ALPHA = 0.05
#: scipy's Friedman test needs three related samples; with two, use the Wilcoxon test
MIN_FRIEDMAN_METHODS = 3
#: below this the Friedman statistic's χ² (and F) approximation and the Nemenyi test, both
#: large-sample, say little (Demšar 2006 gives N > 10, k > 5 as the rule of thumb)
MIN_FRIEDMAN_TASKS = 5
#: with n pairs the smallest two-sided Wilcoxon p-value is 2 / 2**n: 0.0625 for 5 pairs, so fewer
#: than 6 can never reach p < 0.05
MIN_WILCOXON_PAIRS = 6
#: the scope of every dataset at once
ALL = "all datasets"
#: the stratified bootstrap of a test set's AUROC
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
POSTHOCS = ("nemenyi", "wilcoxon")


@dataclass(frozen=True)
class Matrix:
    """One scope's cells: tasks × columns, each the mean over seeds of one (task, column)."""

    scope: str
    metric: str
    values: pd.DataFrame
    methods: dict[str, str]                  # column -> method
    seeds: list[str]
    seeds_per_cell: tuple[int, int]          # fewest and most seeds behind a cell
    suites: list[str]
    dropped: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.values.columns]

    @property
    def n_tasks(self) -> int:
        return len(self.values.index)

    def describe(self) -> str:
        """What the statistic was computed over, for a caption."""
        return describe([self])


def describe(mats: Sequence[Matrix]) -> str:
    """What statistics over ``mats`` were computed over: scopes with their tasks and columns,
    seeds per cell, suites, and the tasks dropped for a missing cell."""
    lo = min(m.seeds_per_cell[0] for m in mats)
    hi = max(m.seeds_per_cell[1] for m in mats)
    seeds = sorted({s for m in mats for s in m.seeds}, key=int)
    suites = sorted({s for m in mats for s in m.suites})
    parts = [", ".join(f"{m.scope} ({m.n_tasks} tasks × {len(m.columns)} columns)"
                       for m in mats),
             f"each cell the mean over {lo if lo == hi else f'{lo}–{hi}'} seed(s) "
             f"(seeds {', '.join(seeds)}) of suite {', '.join(suites)}"]
    for m in mats:
        if m.dropped:
            shown = ", ".join(m.dropped[:6]) + (", …" if len(m.dropped) > 6 else "")
            parts.append(f"{m.scope}: {len(m.dropped)} task(s) dropped for a missing cell "
                         f"({shown})")
    return "; ".join(parts)


def scopes(datasets: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Each dataset on its own, then all of them together when there are several."""
    out = [(d, [d]) for d in datasets]
    return [*out, (ALL, list(datasets))] if len(datasets) > 1 else out


def selection(df: pd.DataFrame, metric: str, datasets: Sequence[str]) -> pd.DataFrame:
    """The successful records of ``metric`` on ``datasets``, each with its column title (computed
    over all of them, so a column is named alike in every scope)."""
    sel = df[(df["metric"] == metric) & (df["status"] == "ok") & df["dataset"].isin(datasets)
             & df["value"].notna()]
    return sel.assign(column=column_labels(sel)) if not sel.empty else sel.assign(column=[])


def matrix(sel: pd.DataFrame, metric: str, scope: str, datasets: Sequence[str],
           task_orders: dict[str, list[str]] | None = None,
           drop_incomplete: bool = False, allow_unequal_seeds: bool = False) -> Matrix:
    """The tasks × columns matrix of one scope; refuses a missing cell unless told to drop it,
    and cells of unequal seed counts unless ``allow_unequal_seeds``."""
    sub = sel[sel["dataset"].isin(datasets)]
    if sub.empty:
        raise UsageError(f"no successful records with {metric} for {scope}")
    task = (sub["dataset"].astype(str) + "/" + sub["task"].astype(str)
            if len(datasets) > 1 else sub["task"].astype(str))
    sub = sub.assign(task=task)
    # one value per (column, task, seed): the same job recorded in two suites counts once
    per_seed = sub.groupby(["column", "task", "seed"])["value"].mean()
    cells = per_seed.groupby(level=["task", "column"])
    values = cells.mean().unstack("column")
    counts = cells.count().unstack("column")
    order: list[str] = []
    for d in datasets:
        tasks = sorted({t for t, ds in zip(sub["task"], sub["dataset"], strict=True) if ds == d})
        names = [t.split("/", 1)[1] if len(datasets) > 1 else t for t in tasks]
        ordered = order_tasks(names, (task_orders or {}).get(d))
        order += [f"{d}/{t}" if len(datasets) > 1 else t for t in ordered]
    values = values.reindex(index=order, columns=sorted(values.columns))
    values.columns.name = None
    methods = {str(c): str(g["method"].iloc[0]) for c, g in sub.groupby("column")}
    if len(values.columns) < 2:
        raise UsageError(f"comparing methods needs at least 2 columns; {scope} has "
                         f"{len(values.columns)} ({', '.join(map(str, values.columns))})")
    missing = values.isna()
    dropped: list[str] = []
    if missing.any().any():
        if not drop_incomplete:
            col = next(c for c in values.columns if missing[c].any())
            first = next(t for t in values.index if missing.at[t, col])
            raise UsageError(
                f"{int(missing.to_numpy().sum())} missing cell(s) in {scope} (e.g. {col} has no "
                f"{metric} on {first}): statistics compare every column on every task; rerun "
                "the missing jobs, narrow with --dataset, or pass --drop-incomplete to drop "
                "those tasks (the caption lists them)")
        dropped = [str(t) for t in values.index[missing.any(axis=1)]]
        values = values[~missing.any(axis=1)]
        if values.empty:
            raise UsageError(f"no task of {scope} has a value for every column")
    seeds_per_cell = counts.reindex(index=values.index, columns=values.columns)
    lo, hi = int(seeds_per_cell.min().min()), int(seeds_per_cell.max().max())
    if lo != hi and not allow_unequal_seeds:
        few = seeds_per_cell.stack().idxmin()
        raise UsageError(f"{scope}: cells rest on {lo} to {hi} seeds (e.g. {few[1]} on "
                         f"{few[0]}: {lo}): a statistic over them weighs unequal precision "
                         "alike; run the missing seeds, or pass --allow-unequal-seeds (the "
                         "caption then says so)")
    return Matrix(scope=scope, metric=metric, values=values.astype(float), methods=methods,
                  seeds=sorted({str(s) for s in sub["seed"]}, key=int),
                  seeds_per_cell=(int(seeds_per_cell.min().min()),
                                  int(seeds_per_cell.max().max())),
                  suites=sorted({str(s) for s in sub["suite"]}), dropped=dropped)


def matrices(df: pd.DataFrame, metric: str, datasets: Sequence[str],
             task_orders: dict[str, list[str]] | None = None,
             drop_incomplete: bool = False, allow_unequal_seeds: bool = False) -> list[Matrix]:
    """One matrix per scope (each dataset, then all together); refuses any missing cell."""
    sel = selection(df, metric, datasets)
    present = [d for d in datasets if (sel["dataset"] == d).any()]
    if not present:
        raise UsageError(f"no successful records with {metric} for {', '.join(datasets)}")
    return [matrix(sel, metric, name, ds, task_orders, drop_incomplete, allow_unequal_seeds)
            for name, ds in scopes(present)]


# ----------------------------------------------------------------------------- ranks, Friedman


def task_ranks(m: Matrix) -> pd.DataFrame:
    """Rank of each column on each task: 1 = highest value, ties share their average rank."""
    return m.values.rank(axis=1, ascending=False, method="average")


def average_ranks(m: Matrix) -> pd.Series:
    return task_ranks(m).mean(axis=0)


@dataclass(frozen=True)
class Friedman:
    """The Friedman test (scipy, χ² with its tie correction) and the Iman–Davenport F."""

    statistic: float
    pvalue: float
    f_statistic: float
    f_pvalue: float
    n_tasks: int
    n_methods: int

    @property
    def significant(self) -> bool:
        """Whether the Friedman test rejects equal ranks at :data:`ALPHA` (χ² p-value)."""
        return self.pvalue < ALPHA

    def not_significant_text(self, scope: str) -> str:
        """The caption's note for a scope where the test is not significant."""
        return (f"{scope}: the Friedman test is not significant at α = {ALPHA} (p = "
                f"{self.pvalue:.3g}, Iman–Davenport p = {self.f_pvalue:.3g}): the columns' "
                "ranks are not shown to differ, so no critical difference is given and no "
                "pair of columns is called different")

    @property
    def rough(self) -> bool:
        """Outside Demšar's rule of thumb for the χ² approximation (N > 10, k > 5)."""
        return self.n_tasks <= 10 or self.n_methods <= 5


def check_friedman(m: Matrix) -> None:
    """Refuse the Friedman test (and its post-hoc tests) where it says nothing honest."""
    k, n = len(m.columns), m.n_tasks
    if k < MIN_FRIEDMAN_METHODS:
        raise UsageError(f"the Friedman test needs at least {MIN_FRIEDMAN_METHODS} columns; "
                         f"{m.scope} has {k}: compare two with the Wilcoxon test (--versus)")
    if n < MIN_FRIEDMAN_TASKS:
        raise UsageError(f"the Friedman test needs at least {MIN_FRIEDMAN_TASKS} tasks; "
                         f"{m.scope} has {n}")


def friedman(m: Matrix) -> Friedman:
    """Do the columns' ranks differ at all? (scipy.stats.friedmanchisquare)."""
    check_friedman(m)
    k, n = len(m.columns), m.n_tasks
    with np.errstate(divide="ignore", invalid="ignore"):
        res = stats.friedmanchisquare(*(m.values[c].to_numpy() for c in m.values.columns))
    chi2, p = float(res.statistic), float(res.pvalue)
    if not np.isfinite(chi2):
        raise UsageError(f"every column ties on every task of {m.scope}: nothing to test")
    # Iman & Davenport's F (Demšar 2006, eq. 2): less conservative than the χ² for small N
    denominator = n * (k - 1) - chi2
    f = (n - 1) * chi2 / denominator if denominator > 0 else float("inf")
    f_p = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1))) if np.isfinite(f) else 0.0
    return Friedman(chi2, p, float(f), f_p, n, k)


def critical_difference(n_methods: int, n_tasks: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of average ranks (Demšar 2006, section 3.2.2): the
    studentized range quantile (scipy) / √2 × √(k(k+1) / 6N)."""
    q = stats.studentized_range.ppf(1 - alpha, n_methods, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(n_methods * (n_methods + 1) / (6 * n_tasks)))


def nemenyi(m: Matrix) -> pd.DataFrame:
    """All-pairs Nemenyi p-values after Friedman (scikit_posthocs.posthoc_nemenyi_friedman)."""
    check_friedman(m)
    p = sp.posthoc_nemenyi_friedman(m.values.reset_index(drop=True))
    return p.reindex(index=m.values.columns, columns=m.values.columns)


def check_wilcoxon(m: Matrix) -> None:
    if m.n_tasks < MIN_WILCOXON_PAIRS:
        raise UsageError(f"the Wilcoxon signed-rank test needs at least {MIN_WILCOXON_PAIRS} "
                         f"paired tasks (with fewer, p can never fall below 0.05); {m.scope} has "
                         f"{m.n_tasks}")


def wilcoxon_holm(m: Matrix) -> pd.DataFrame:
    """All-pairs Wilcoxon signed-rank p-values, Holm-corrected over the pairs
    (scikit_posthocs.posthoc_wilcoxon; zero differences split between the signs)."""
    if len(m.columns) < 2:
        raise UsageError(f"comparing methods needs at least 2 columns; {m.scope} has "
                         f"{len(m.columns)}")
    check_wilcoxon(m)
    long = m.values.melt(var_name="column", value_name="value")
    p = sp.posthoc_wilcoxon(long, val_col="value", group_col="column", zero_method="zsplit",
                            p_adjust="holm")
    return p.reindex(index=m.values.columns, columns=m.values.columns)


def posthoc(m: Matrix, test: str) -> pd.DataFrame:
    if test not in POSTHOCS:
        raise UsageError(f"unknown post-hoc test {test!r}; choose from {', '.join(POSTHOCS)}")
    return nemenyi(m) if test == "nemenyi" else wilcoxon_holm(m)


# ----------------------------------------------------------------------------- versus one column


def resolve_column(m: Matrix, name: str) -> str:
    """The column ``name`` means: a column title, or the only column of a method."""
    if name in m.columns:
        return name
    of_method = [c for c in m.columns if m.methods.get(c) == name]
    if len(of_method) == 1:
        return of_method[0]
    if of_method:
        raise UsageError(f"{name} has {len(of_method)} columns in {m.scope} "
                         f"({'; '.join(of_method)}): pass one of these titles")
    raise UsageError(f"no column {name!r} in {m.scope}; columns: {', '.join(m.columns)}")


def versus(m: Matrix, reference: str) -> pd.DataFrame:
    """Each other column against ``reference`` over the tasks: median difference (other −
    reference), wins/ties/losses, and the two-sided Wilcoxon signed-rank test
    (scipy.stats.wilcoxon, zero differences split) with Holm's correction over the comparisons
    (statsmodels). ``pvalue`` and ``pvalue_holm`` are NaN when the scope has too few tasks."""
    ref = resolve_column(m, reference)
    others = [c for c in m.columns if c != ref]
    base = m.values[ref].to_numpy()
    rows = []
    for c in others:
        d = m.values[c].to_numpy() - base
        row = {"column": c, "n_tasks": len(d), "median_delta": float(np.median(d)),
               "wins": int((d > 0).sum()), "ties": int((d == 0).sum()),
               "losses": int((d < 0).sum()), "statistic": np.nan, "pvalue": np.nan}
        if len(d) >= MIN_WILCOXON_PAIRS:
            res = stats.wilcoxon(m.values[c].to_numpy(), base, zero_method="zsplit")
            row.update(statistic=float(res.statistic), pvalue=float(res.pvalue))
        rows.append(row)
    out = pd.DataFrame(rows, columns=["column", "n_tasks", "median_delta", "wins", "ties",
                                      "losses", "statistic", "pvalue"])
    tested = out["pvalue"].notna()
    out["pvalue_holm"] = np.nan
    if tested.any():
        out.loc[tested, "pvalue_holm"] = multipletests(out.loc[tested, "pvalue"],
                                                       method="holm")[1]
    return out.sort_values(["median_delta", "column"], ascending=[False, True],
                            ignore_index=True)


def default_reference(methods: Sequence[str], published: pd.DataFrame | None) -> str | None:
    """The column to compare against when none is named: the method whose paper the published
    numbers come from (``kind == "paper"`` in the reference data), if it has records, else the
    first of ``methods`` (the suite's order)."""
    if published is not None and not published.empty:
        paper = published.loc[published["kind"] == "paper", "method"]
        for name in paper.drop_duplicates():
            if name in methods:
                return str(name)
    return str(methods[0]) if len(methods) else None


# ----------------------------------------------------------------------------- one job's AUROC


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float


def _auroc(anomalous: np.ndarray, normal: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUROC = Mann–Whitney U of the anomalous scores / (n_anomalous × n_normal), ties as ½."""
    u = stats.mannwhitneyu(anomalous, normal, axis=axis, method="asymptotic").statistic
    return np.asarray(u) / (anomalous.shape[axis] * normal.shape[axis])


def bootstrap_auroc(labels: np.ndarray, scores: np.ndarray, *, level: float = 0.95,
                    n_resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> Interval:
    """Percentile interval of the image AUROC by a stratified bootstrap of the test set:
    normal and anomalous images are resampled separately (scipy.stats.bootstrap with two
    samples), so every resample keeps the test set's class counts. Deterministic in ``seed``.
    Perfectly separated classes give a zero-width interval: no resample can do otherwise."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    anomalous, normal = scores[labels == 1], scores[labels == 0]
    if len(anomalous) < 2 or len(normal) < 2:
        raise UsageError(f"a bootstrap interval needs at least 2 normal and 2 anomalous test "
                         f"images; this test set has {len(normal)} and {len(anomalous)}")
    res = stats.bootstrap((anomalous, normal), _auroc, n_resamples=n_resamples,
                          confidence_level=level, method="percentile", vectorized=True,
                          batch=max(1, min(n_resamples, 2_000_000 // len(scores))),
                          rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Interval(float(_auroc(anomalous, normal)), float(ci.low), float(ci.high))
