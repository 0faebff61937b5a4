"""``bench check`` and ``bench baseline update``: guard scores in CI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pandas as pd

from bench.cli._common import Settings, reads_results, suite_refs
from bench.cli._types import SETTING, shots_list
from bench.core.errors import UsageError
from bench.records.key import variant_label
from bench.records.record import plugin_labels
from bench.records.store import Store
from bench.report.check import (
    DEFAULT_METRICS,
    Tolerances,
    baseline_frame,
    compare,
    degenerate_rows,
    read_baseline,
    setting_labels,
    verdict,
    write_baseline,
)


def _default_baseline(settings: Settings, suite: str) -> Path:
    """``<results>/baselines/<suite>.csv``: under ``--results`` like everything else."""
    return settings.results_root / "baselines" / f"{suite}.csv"


def _failed_rows(store: Store, suite: str) -> pd.DataFrame:
    summ = store.summary(suite)
    failed = summ[summ["status"] != "ok"]
    failed = failed.assign(setting=setting_labels(failed))
    return failed[["method", "overrides", "dataset", "task", "seed", "setting", "error"]]


_SETTING_OPTION = click.option(
    "--setting", "settings_", multiple=True, type=SETTING,
    help="Only the suite's jobs in this setting (repeatable; default: the suite's settings).")
_SHOTS_OPTION = click.option("--shots", default=None, metavar="K,...",
                             help="k of the few-shot setting (default: the suite's).")


@click.command()
@click.option("--suite", default="ci", show_default=True, callback=suite_refs)
@click.option("--baseline", type=click.Path(dir_okay=False), default=None,
              help="Baseline CSV (default: <results>/baselines/<suite>.csv).")
@click.option("--tolerance", "tolerances", multiple=True, metavar="[METRIC=]T",
              help="Allowed absolute change either way: a default (e.g. 0.01) or per metric "
                   "(pixel_aupro=0.02). Repeatable.")
@click.option("--show", type=click.IntRange(min=1), default=20, show_default=True,
              help="Rows of the diff table to print.")
@_SETTING_OPTION
@_SHOTS_OPTION
@reads_results
def check(settings: Settings, suite: str, baseline: str | None, tolerances: tuple[str, ...],
          show: int, settings_: tuple[str, ...], shots: str | None) -> None:
    """Compare the suite's records with a baseline; exit 1 on a drop or a rise beyond the
    tolerance, a missing or failed job, or a degenerate detector."""
    tol = Tolerances.parse(tolerances)
    from bench.run.runner import plan  # imported when the command runs: it loads torch
    from bench.run.select import select_jobs

    the_suite, jobs = select_jobs(suite, data_root=settings.data_root, check_data=False,
                                  settings=settings_, shots=shots_list(shots))
    base_path = baseline or _default_baseline(settings, the_suite.name)
    base = read_baseline(base_path)
    if base.empty:
        raise UsageError(f"baseline {base_path} pins nothing")
    if settings_:  # the values of the other settings are not checked here
        labels = {j.setting_label for j in jobs}
        base = base[base["setting"].isin(labels)]
    store = Store(settings.results_root)
    ids = {j.id for j in jobs}
    df = store.load(the_suite.name)
    current = baseline_frame(df[df["id"].isin(ids)])
    result = compare(current, base, tol, _failed_rows(store, the_suite.name))
    todo, _, failed = plan(jobs, store)
    pinned = set(zip(base["method"], base["overrides"], base["dataset"], base["task"],
                     base["seed"], base["setting"], strict=True))
    errors = {r.id: r.error or "" for r in store.records(the_suite.name) if not r.ok}
    # a job of the suite without a record, or failed, fails the check pinned or not
    unpinned_missing = [
        {"method": j.method, "overrides": json.dumps(j.overrides_dict, sort_keys=True),
         "dataset": j.dataset, "task": j.task, "seed": j.seed, "setting": j.setting_label,
         "metric": "(no record)" if status == "missing" else "(failed)",
         "status": status, "error": errors.get(j.id, "")}
        for status, group in (("missing", todo), ("failed", failed)) for j in group
        if (j.method, json.dumps(j.overrides_dict, sort_keys=True), j.dataset, j.task,
            j.seed, j.setting_label) not in pinned and not (
            j.setting == "unified" and any(
                (j.method, json.dumps(j.overrides_dict, sort_keys=True), j.dataset, j.seed,
                 j.setting_label) == (p[0], p[1], p[2], p[4], p[5]) for p in pinned))
    ]
    if unpinned_missing:
        result = pd.concat([pd.DataFrame(unpinned_missing), result], ignore_index=True)
    dead = degenerate_rows(df[df["id"].isin(ids)])
    if len(dead):
        result = pd.concat([dead, result], ignore_index=True)
    counts = result["status"].value_counts().to_dict()
    con = settings.console
    bad = result[result["status"].isin(["failed", "missing", "regression"])]
    better = result[result["status"] == "improvement"]
    new = result[result["status"] == "new"]
    plugins = plugin_labels(store.records(the_suite.name))  # a plugin's version, beside its rows
    if len(bad):
        con.print(_diff_lines(bad.head(show), "regressions, missing and failed (worst first)",
                              plugins), highlight=False, soft_wrap=True, markup=False)
    dead = result[result["status"] == "degenerate"]
    if len(dead):
        con.print(_diff_lines(dead.head(show), "degenerate detectors (docs/tables.md#checks)",
                              plugins), highlight=False, soft_wrap=True, markup=False)
    if len(better):
        con.print(_diff_lines(better.sort_values("delta", ascending=False).head(show),
                              "improvement beyond tolerance: accept it with "
                              f"`bench baseline update --suite {suite}`", plugins),
                  highlight=False, soft_wrap=True, markup=False)
    if len(new):
        con.print(f"{len(new)} value(s) have no baseline yet (not checked)")
    if plugins:
        con.print("plugins in these records: " + "; ".join(f"{m}: {v}" for m, v in
                                                          sorted(plugins.items())),
                  highlight=False, soft_wrap=True)
    summary = ", ".join(f"{counts.get(k, 0)} {k}" for k in
                        ("ok", "regression", "missing", "failed", "improvement", "degenerate",
                         "new"))
    ok = verdict(result)
    con.print(f"bench check {the_suite.name}: {'PASS' if ok else 'FAIL'} ({summary}; "
              f"tolerance {tol.default:g}"
              + "".join(f", {k}={v:g}" for k, v in (tol.per_metric or {}).items()) + ")")
    if not ok:
        sys.exit(1)


def _diff_lines(rows: pd.DataFrame, title: str, plugins: dict[str, str] | None = None) -> str:
    """One plain line per value (greppable in CI logs, never truncated by a narrow terminal)."""

    def fmt(x: object) -> str:
        return "–" if x is None or (isinstance(x, float) and pd.isna(x)) else f"{x:.4f}"

    lines = [title + ":"]
    for _, r in rows.iterrows():
        variant = variant_label(json.loads(r["overrides"])) if r["overrides"] else ""
        name = f"{r['method']}[{variant}]" if variant else r["method"]
        delta = r["delta"]
        change = "" if pd.isna(delta) else f" ({'+' if delta > 0 else ''}{delta:.4f}, " \
            f"tolerance {r['tolerance']:g})"
        seed = "" if r["seed"] == "" or pd.isna(r["seed"]) else f" seed {r['seed']}"
        setting = r.get("setting")
        where = "" if not isinstance(setting, str) or setting == "one-class" else f" ({setting})"
        line = (f"  {r['status'].upper():<11} {name} {r['dataset']}/{r['task']}{seed}{where} "
                f"{r['metric']}")
        if r["status"] != "degenerate":  # no values to compare: the reason says it all
            line += f": {fmt(r['baseline'])} -> {fmt(r['current'])}{change}"
        if r.get("error"):
            line += f" — {r['error']}"
        if (plugins or {}).get(r["method"]):
            line += f" (plugin {(plugins or {})[r['method']]})"
        lines.append(line)
    return "\n".join(lines)


@click.group()
def baseline() -> None:
    """Manage score baselines for `bench check`."""


@baseline.command("update")
@click.option("--suite", default="ci", show_default=True, callback=suite_refs)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Baseline CSV to write (default: <results>/baselines/<suite>.csv).")
@click.option("--metric", "metrics", multiple=True,
              help=f"Metrics to pin (default: {', '.join(DEFAULT_METRICS)}).")
@_SETTING_OPTION
@_SHOTS_OPTION
@reads_results
def update(settings: Settings, suite: str, output: str | None, metrics: tuple[str, ...],
           settings_: tuple[str, ...], shots: str | None) -> None:
    """Rewrite the baseline from the current records (every job of the suite must be ok)."""
    store = Store(settings.results_root)
    from bench.run.runner import plan  # imported when the command runs: it loads torch
    from bench.run.select import select_jobs

    the_suite, jobs = select_jobs(suite, data_root=settings.data_root, check_data=False,
                                  settings=settings_, shots=shots_list(shots))
    todo, _, failed = plan(jobs, store)
    if todo or failed:
        raise UsageError(f"suite {the_suite.name}: {len(todo)} job(s) without a record and "
                         f"{len(failed)} failed; run `bench run --suite {suite} --all` first")
    ids = {j.id for j in jobs}
    df = store.load(the_suite.name)
    frame = baseline_frame(df[df["id"].isin(ids)], metrics or DEFAULT_METRICS)
    path = Path(output) if output else _default_baseline(settings, the_suite.name)
    text = write_baseline(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    settings.console.print(f"wrote {len(frame)} pinned value(s) to {path}")
