"""Statistics over methods × tasks: known values from Demšar (JMLR 2006), the libraries that
compute them, refusals, bootstrap intervals, and the commands that show them."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss
from sklearn.metrics import roc_auc_score

from bench.core.errors import UsageError
from bench.records.record import Record
from bench.records.store import Store
from bench.report import figures, stats
from bench.report.aggregate import method_table
from bench.report.intervals import with_auroc_intervals
from bench.report.render import render
from bench.report.render_stats import render_stats
from bench.report.stat_tables import CD_ROW, ranks_table, versus_tables
from bench.run.jobs import Job
from tests.conftest import invoke
from tests.records import record, write_all

# ------------------------------------------------------------------ Demšar (2006), Tables 2 and 6

DEMSAR_COLUMNS = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
#: AUC of four C4.5 settings on 14 UCI data sets (Demšar 2006, Table 6; its first two columns are
#: Table 2). The paper prints three decimals; on voting C4.5+cf ranks above C4.5+m+cf in its
#: ranks (both print as 0.975), so that cell is nudged by 1e-4 to keep the paper's order.
DEMSAR = np.array([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.9751, 0.975], [0.957, 0.978, 0.946, 0.970]])


def as_matrix(values: np.ndarray, columns: list[str], scope: str = "demsar") -> stats.Matrix:
    frame = pd.DataFrame(values, columns=columns,
                         index=[f"t{i}" for i in range(len(values))])
    return stats.Matrix(scope=scope, metric="image_auroc", values=frame,
                        methods={c: c for c in columns}, seeds=["0"], seeds_per_cell=(1, 1),
                        suites=["s"])


@pytest.fixture
def demsar() -> stats.Matrix:
    return as_matrix(DEMSAR, DEMSAR_COLUMNS)


def test_average_ranks_are_demsars(demsar):
    assert stats.average_ranks(demsar).to_numpy() == pytest.approx(
        [3.143, 2.000, 2.893, 1.964], abs=1e-3)


def test_friedman_is_scipys_and_demsars_up_to_the_tie_correction(demsar):
    f = stats.friedman(demsar)
    scipy_result = ss.friedmanchisquare(*DEMSAR.T)
    assert f.statistic == pytest.approx(scipy_result.statistic)
    assert f.pvalue == pytest.approx(scipy_result.pvalue)
    # Demšar's χ²_F = 9.28 has no tie correction; scipy divides by C = 1 − Σ(t³ − t) / (N k (k²−1))
    n, k = DEMSAR.shape
    ties = sum(int((c ** 3 - c).sum()) for c in (np.unique(r, return_counts=True)[1]
                                                   for r in DEMSAR))
    assert f.statistic * (1 - ties / (n * k * (k * k - 1))) == pytest.approx(9.28, abs=5e-3)
    assert f.f_statistic == pytest.approx((n - 1) * f.statistic / (n * (k - 1) - f.statistic))
    assert f.f_pvalue == pytest.approx(ss.f.sf(f.f_statistic, k - 1, (k - 1) * (n - 1)))
    assert f.rough  # k = 4 ≤ 5


def test_iman_davenport_of_demsars_example():
    n, k, chi2 = 14, 4, 9.28
    f = (n - 1) * chi2 / (n * (k - 1) - chi2)
    assert f == pytest.approx(3.69, abs=5e-3)
    assert ss.f.ppf(0.95, k - 1, (k - 1) * (n - 1)) == pytest.approx(2.85, abs=5e-3)


def test_nemenyi_critical_difference_and_pairs_of_demsars_example(demsar):
    assert stats.critical_difference(4, 14) == pytest.approx(1.25, abs=5e-3)
    assert stats.critical_difference(4, 14, alpha=0.10) == pytest.approx(1.12, abs=5e-3)
    p = stats.nemenyi(demsar)
    pairs = {(a, b) for a in p.index for b in p.columns if a < b}
    assert not [ab for ab in pairs if p.at[ab] < 0.05]  # "none at α = 0.05"
    assert {ab for ab in pairs if p.at[ab] < 0.10} == {("C4.5", "C4.5+m"),
                                                        ("C4.5", "C4.5+m+cf")}
    import scikit_posthocs as sp
    assert p.to_numpy() == pytest.approx(sp.posthoc_nemenyi_friedman(DEMSAR).to_numpy())


def test_wilcoxon_of_demsars_table_2(demsar):
    out = stats.versus(demsar, "C4.5").set_index("column")
    row = out.loc["C4.5+m"]
    assert row["statistic"] == 12  # T = min(R+ = 93, R− = 12), zero differences split
    assert (row["wins"], row["ties"], row["losses"]) == (10, 2, 2)
    assert row["pvalue"] < 0.05  # the critical T for N = 14 is 21
    want = ss.wilcoxon(DEMSAR[:, 1], DEMSAR[:, 0], zero_method="zsplit")
    assert row["pvalue"] == pytest.approx(want.pvalue)
    assert row["median_delta"] == pytest.approx(np.median(DEMSAR[:, 1] - DEMSAR[:, 0]))


def test_holm_correction_over_the_comparisons(demsar):
    out = stats.versus(demsar, "C4.5").sort_values("pvalue")
    p, m = out["pvalue"].to_numpy(), len(out)
    holm = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * p))
    assert out["pvalue_holm"].to_numpy() == pytest.approx(holm)


def test_all_pairs_wilcoxon_holm_is_scikit_posthocs(demsar):
    import scikit_posthocs as sp
    p = stats.wilcoxon_holm(demsar)
    want = sp.posthoc_wilcoxon(list(DEMSAR.T), zero_method="zsplit", p_adjust="holm")
    assert p.to_numpy() == pytest.approx(want.to_numpy())


def test_ranks_average_ties_and_higher_is_better():
    m = as_matrix(np.array([[0.9, 0.8, 0.8], [0.5, 0.7, 0.6]]), ["a", "b", "c"])
    assert stats.task_ranks(m).to_numpy().tolist() == [[1, 2.5, 2.5], [3, 1, 2]]


# ------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("shape,call,needle", [
    ((14, 2), stats.friedman, "at least 3 columns"),
    ((4, 4), stats.friedman, "at least 5 tasks"),
    ((4, 4), stats.nemenyi, "at least 5 tasks"),
    ((5, 3), stats.wilcoxon_holm, "at least 6 paired tasks"),
])
def test_tests_refuse_what_they_cannot_compute(shape, call, needle):
    rng = np.random.default_rng(0)
    m = as_matrix(rng.random(shape), [f"c{i}" for i in range(shape[1])])
    with pytest.raises(UsageError, match=needle):
        call(m)


def test_friedman_refuses_a_total_tie():
    with pytest.raises(UsageError, match="ties on every task"):
        stats.friedman(as_matrix(np.ones((6, 3)), ["a", "b", "c"]))


def test_versus_leaves_p_empty_with_too_few_tasks_and_the_tables_refuse():
    m = as_matrix(DEMSAR[:5], DEMSAR_COLUMNS)
    out = stats.versus(m, "C4.5")
    assert out["pvalue"].isna().all() and out["median_delta"].notna().all()
    with pytest.raises(UsageError, match="at least 6 paired tasks"):
        versus_tables([m], "C4.5")


@pytest.mark.parametrize("name,needle", [("nope", "no column 'nope'"),
                                         ("m", "m has 2 columns")])
def test_the_reference_column_must_be_one(name, needle):
    m = as_matrix(DEMSAR[:, :3], ["m [a=1]", "m [a=2]", "x"])
    m = stats.Matrix(**{**m.__dict__, "methods": {"m [a=1]": "m", "m [a=2]": "m", "x": "x"}})
    with pytest.raises(UsageError, match=re.escape(needle)):
        stats.resolve_column(m, name)
    assert stats.resolve_column(m, "x") == "x" and stats.resolve_column(m, "m [a=2]") == "m [a=2]"


def test_default_reference_is_the_published_papers_method():
    published = pd.DataFrame({"kind": ["rerun", "paper"], "method": ["z", "b"]})
    assert stats.default_reference(["a", "b"], published) == "b"
    assert stats.default_reference(["a", "c"], published) == "a"
    assert stats.default_reference([], None) is None


# --------------------------------------------------------------------- records through the store

METHODS = {"mkd": 0.90, "ocsvm": 0.85, "kde": 0.80, "iforest": 0.83}


def value(method: str, task: int, seed: int = 0) -> float:
    """Distinct per task, so ranks vary; mkd best on most tasks."""
    return METHODS[method] + 0.03 * ((3 * task + len(method) + seed) % 5) / 4


def stat_records(tasks: int = 8, seeds: tuple[int, ...] = (0,), skip: tuple = ()) -> list[dict]:
    return [record("st", m, "digits", str(t), s, {"image_auroc": value(m, t, s)})
            for m in METHODS for t in range(tasks) for s in seeds if (m, str(t)) not in skip] + [
        record("st", m, "textures", t, 0, {"image_auroc": value(m, i)})
        for m in METHODS for i, t in enumerate(("brick", "grass", "gravel"))]


def test_matrix_averages_seeds_per_task_and_says_so(tmp_path):
    df = write_all(tmp_path, stat_records(tasks=6, seeds=(0, 1, 2))).load()
    with pytest.raises(UsageError, match=r"all datasets: cells rest on 1 to 3 seeds.*"
                                         "--allow-unequal-seeds"):
        stats.matrices(df, "image_auroc", ["digits", "textures"])
    mats = stats.matrices(df, "image_auroc", ["digits", "textures"], allow_unequal_seeds=True)
    assert "shown as asked (--allow-unequal-seeds)" in ranks_table(mats).caption
    assert [m.scope for m in mats] == ["digits", "textures", stats.ALL]
    digits = mats[0]
    want = np.mean([value("kde", 2, s) for s in (0, 1, 2)])
    assert digits.values.at["2", "kde"] == pytest.approx(want)
    assert mats[2].n_tasks == 9 and "textures/brick" in mats[2].values.index
    text = stats.describe(mats)
    assert "digits (6 tasks × 4 columns)" in text and "1–3 seed(s)" in text
    assert "seeds 0, 1, 2" in text and "suite st" in text


def test_a_missing_cell_is_refused_or_dropped_and_said(tmp_path):
    df = write_all(tmp_path, stat_records(skip=(("kde", "3"),))).load()
    with pytest.raises(UsageError, match="missing cell.*kde has no image_auroc on 3.*"
                                         "--drop-incomplete"):
        stats.matrices(df, "image_auroc", ["digits"])
    [m] = stats.matrices(df, "image_auroc", ["digits"], drop_incomplete=True)
    assert m.n_tasks == 7 and m.dropped == ["3"]
    assert "1 task(s) dropped for a missing cell (3)" in ranks_table([m]).caption


def test_a_failed_job_is_a_missing_cell(tmp_path):
    recs = stat_records()
    recs.append(record("st", "kde", "digits", "9", 0, {}, status="failed"))
    recs += [record("st", m, "digits", "9", 0, {"image_auroc": 0.5}) for m in METHODS
             if m != "kde"]
    with pytest.raises(UsageError, match="kde has no image_auroc on 9"):
        stats.matrices(write_all(tmp_path, recs).load(), "image_auroc", ["digits"])


def test_one_method_is_refused(tmp_path):
    df = write_all(tmp_path, [r for r in stat_records() if r["job"]["method"] == "kde"]).load()
    with pytest.raises(UsageError, match="at least 2 columns"):
        stats.matrices(df, "image_auroc", ["digits"])


def test_ranks_table_states_what_it_was_computed_over(tmp_path):
    df = write_all(tmp_path, stat_records()).load()
    t = ranks_table(stats.matrices(df, "image_auroc", ["digits", "textures"]))
    assert list(t.cells.columns) == ["digits", "textures", stats.ALL]
    assert t.cells.at["tasks", stats.ALL] == "11"
    assert t.cells.at["Friedman p", "textures"] == "–"
    for needle in ("image AUROC", "digits (8 tasks × 4 columns)", "seeds 0", "suite st",
                   "textures: no Friedman test", "scipy.stats.friedmanchisquare", "Nemenyi"):
        assert needle in t.caption, needle
    csv = pd.read_csv(io.StringIO(render_stats([t], "csv")))
    assert set(csv["scope"]) == {"digits", "textures", stats.ALL}
    assert csv.loc[csv["scope"] == "textures", "friedman_p"].isna().all()


# ------------------------------------------------------------------------- bootstrap intervals


def scores_of(n_normal: int, n_anomalous: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_normal, int), np.ones(n_anomalous, int)]
    return labels, labels * 1.0 + rng.normal(0, 1.0, len(labels))


def test_bootstrap_is_seeded_and_contains_the_point():
    labels, scores = scores_of(60, 40)
    a = stats.bootstrap_auroc(labels, scores, seed=3)
    assert a == stats.bootstrap_auroc(labels, scores, seed=3)
    assert a != stats.bootstrap_auroc(labels, scores, seed=4)
    assert a.point == pytest.approx(roc_auc_score(labels, scores))
    assert a.low < a.point < a.high


def test_bootstrap_narrows_with_more_test_images_and_a_lower_level():
    small = stats.bootstrap_auroc(*scores_of(30, 20))
    large = stats.bootstrap_auroc(*scores_of(600, 400))
    assert large.high - large.low < 0.5 * (small.high - small.low)
    labels, scores = scores_of(60, 40)
    wide = stats.bootstrap_auroc(labels, scores, level=0.99)
    narrow = stats.bootstrap_auroc(labels, scores, level=0.80)
    assert wide.low < narrow.low and narrow.high < wide.high


def test_bootstrap_keeps_the_class_counts():
    # 3 anomalies among 103 images: a plain bootstrap would draw resamples without any anomaly
    # (no AUROC); the stratified one keeps 3 in each, so the interval is defined
    labels, scores = scores_of(100, 3, seed=1)
    iv = stats.bootstrap_auroc(labels, scores)
    assert np.isfinite([iv.low, iv.high]).all() and iv.low <= iv.point <= iv.high
    # perfectly separated classes stay separated in every resample: a zero-width interval
    separated = stats.bootstrap_auroc(labels, labels + 0.01 * np.arange(len(labels)))
    assert (separated.point, separated.low, separated.high) == (1.0, 1.0, 1.0)


def test_bootstrap_refuses_a_class_of_one():
    with pytest.raises(UsageError, match="at least 2 normal and 2 anomalous"):
        stats.bootstrap_auroc(np.array([0, 0, 0, 1]), np.array([0.1, 0.2, 0.3, 0.9]))


def write_with_scores(root, n_test: int = 40, tamper: bool = False) -> Store:
    """Two methods × two tasks, one seed, each with saved test scores that give its AUROC."""
    store = Store(root)
    for k, method in enumerate(("kde", "ocsvm")):
        for t, task in enumerate(("brick", "grass")):
            labels, scores = scores_of(n_test, n_test, seed=10 * k + t)
            auroc = float(roc_auc_score(labels, scores))
            rec = record("ci", method, "textures", task, 0,
                         {"image_auroc": auroc + (0.01 if tamper else 0.0)})
            rec["artifacts"] = store.write_artifacts(Job.from_key(rec["job"]), labels, scores)
            store.write(Record.from_json(rec))
    return store


def test_intervals_from_the_saved_scores(tmp_path):
    store = write_with_scores(tmp_path)
    df = store.load()
    [t] = with_auroc_intervals(store, df, [method_table(df, "textures", "image_auroc")], 95)
    assert t.ci_low is not None and t.ci_high is not None
    lo, hi = t.ci_low.at["brick", "kde"], t.ci_high.at["brick", "kde"]
    assert lo < t.mean.at["brick", "kde"] < hi
    assert np.isnan(t.ci_low.at["Mean", "kde"])
    text = render([t], "markdown")
    assert f"[{100 * lo:.1f}, {100 * hi:.1f}]" in text
    for needle in ("95% confidence interval", "stratified bootstrap", "1000 resamples",
                   "seed 0", "(4 here)"):
        assert needle in text, needle
    csv = pd.read_csv(io.StringIO(render([t], "csv")), dtype={"task": str})
    cell = csv[(csv["task"] == "brick") & (csv["method"] == "kde")]
    assert cell["ci_low"].iloc[0] == pytest.approx(lo, abs=1e-6)


def test_intervals_refuse_scores_that_disagree_with_the_record(tmp_path):
    store = write_with_scores(tmp_path, tamper=True)
    df = store.load()
    with pytest.raises(UsageError, match="saved scores give an AUROC"):
        with_auroc_intervals(store, df, [method_table(df, "textures", "image_auroc")], 95)


# ------------------------------------------------------------------------------------ commands


@pytest.fixture
def st(results):
    write_all(results, stat_records())
    return results


def one_line_error(res, needle: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("bench: error:"), res.output
    assert needle in lines[0], lines[0]


def test_table_ranks_in_every_format(cli, st):
    md = invoke(cli, st, "table", "--suite", "st", "--ranks")
    assert md.exit_code == 0, md.output
    assert "### Average ranks — image_auroc" in md.output and "| Friedman p" in md.output
    assert "| mkd " in md.output and "all datasets" in md.output
    tex = invoke(cli, st, "table", "--suite", "st", "--ranks", "--format", "latex")
    assert r"\toprule" in tex.output and r"\midrule" + "\ntasks" in tex.output
    html = invoke(cli, st, "table", "--suite", "st", "--ranks", "--format", "html")
    assert '<table class="bench-table">' in html.output and "<caption>" in html.output
    csv = invoke(cli, st, "table", "--suite", "st", "--ranks", "--format", "csv")
    assert csv.output.startswith("table,scope,metric,column,average_rank")


def test_table_versus(cli, st):
    res = invoke(cli, st, "table", "--suite", "st", "--versus", "mkd", "--dataset", "digits")
    assert res.exit_code == 0, res.output
    assert "### digits — image_auroc: against mkd" in res.output
    row = next(ln for ln in res.output.splitlines() if ln.startswith("| kde"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "8" and cells[3].count("/") == 2 and cells[2].startswith("−")
    assert "Holm" in res.output and "8 tasks × 4 columns" in res.output
    both = invoke(cli, st, "table", "--suite", "st", "--ranks", "--versus", "mkd",
                  "--format", "csv")
    df = pd.read_csv(io.StringIO(both.output))
    assert set(df["table"]) == {"ranks", "versus"}
    assert set(df.loc[df["table"] == "versus", "scope"]) == {"digits", "textures", stats.ALL}


@pytest.mark.parametrize("args,needle", [
    (("--versus", "nope"), "no column 'nope'"),
    (("--versus", "mkd", "--dataset", "textures"), "at least 6 paired tasks"),
    (("--ranks", "--paper"), "not with --ablation, --paper, --reruns, --published or --ci"),
    (("--drop-incomplete",), "--drop-incomplete applies to --ranks and --versus"),
    (("--ci", "95", "--metric", "image_ap"), "--ci is an interval of the image AUROC"),
    (("--ci", "95",), "saved no test scores"),
])
def test_table_statistics_refusals(cli, st, args, needle):
    if "image_ap" in args:
        write_all(st, [record("st", "kde", "digits", "0", 1, {"image_ap": 0.5})])
    one_line_error(invoke(cli, st, "table", "--suite", "st", *args), needle)


def test_table_refuses_a_missing_cell_and_drops_it_on_request(cli, results):
    write_all(results, stat_records(skip=(("kde", "3"),)))
    one_line_error(invoke(cli, results, "table", "--suite", "st", "--ranks"),
                   "missing cell(s) in digits")
    ok = invoke(cli, results, "table", "--suite", "st", "--ranks", "--drop-incomplete")
    assert ok.exit_code == 0 and "dropped for a missing cell (3" in ok.output


def test_versus_says_where_the_reference_has_no_column(tmp_path):
    recs = [r for r in stat_records() if not (r["job"]["method"] == "mkd"
                                              and r["job"]["dataset"] == "textures")]
    df = write_all(tmp_path, recs).load()
    mats = stats.matrices(df, "image_auroc", ["digits"]) + stats.matrices(
        df, "image_auroc", ["textures"])
    [t] = versus_tables(mats, "mkd")
    assert t.title.startswith("digits") and "no column 'mkd' in textures" in t.caption


def test_table_refuses_one_method(cli, results):
    write_all(results, [r for r in stat_records() if r["job"]["method"] == "kde"])
    one_line_error(invoke(cli, results, "table", "--suite", "st", "--ranks"),
                   "at least 2 columns")


def test_table_ci(cli, results):
    write_with_scores(results)
    res = invoke(cli, results, "table", "--suite", "ci", "--ci", "95")
    assert res.exit_code == 0, res.output
    assert re.search(r"\| brick +\| \**\d+\.\d \[\d+\.\d, \d+\.\d\]", res.output), res.output
    assert "stratified bootstrap" in res.output


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_plot_cd_writes_one_diagram_per_testable_scope(cli, st, fmt):
    res = invoke(cli, st, "plot", "cd", "--suite", "st", "--image-format", fmt)
    assert res.exit_code == 0, res.output
    assert "no diagram for textures: the Friedman test needs at least 5 tasks" in res.output
    written = sorted(p.name for p in (st / "figures" / "st").iterdir())
    assert written == [f"cd-all-image_auroc.{fmt}", f"cd-digits-image_auroc.{fmt}"]


def test_plot_cd_with_wilcoxon_and_its_refusal(cli, st):
    res = invoke(cli, st, "plot", "cd", "--suite", "st", "--dataset", "digits",
                 "--posthoc", "wilcoxon")
    assert res.exit_code == 0, res.output
    assert (st / "figures" / "st" / "cd-digits-image_auroc-wilcoxon.png").stat().st_size > 5000
    one_line_error(invoke(cli, st, "plot", "cd", "--suite", "st", "--dataset", "textures"),
                   "no critical-difference diagram: textures: the Friedman test needs")


def test_report_has_a_statistics_section(cli, st):
    res = invoke(cli, st, "report", "--suite", "st")
    assert res.exit_code == 0, res.output
    page = (st / "report-st.html").read_text()
    section = page.split("<h2>Statistics: image_auroc</h2>", 1)[1].split("<h2>", 1)[0]
    assert "Average ranks — image_auroc" in section
    assert 'alt="cd-digits-image_auroc"' in section and 'alt="cd-all-image_auroc"' in section
    assert "No critical-difference diagram for textures" in section
    # the reference defaults to the method of the published paper numbers
    assert "digits — image_auroc: against mkd" in section
    other = invoke(cli, st, "report", "--suite", "st", "--versus", "kde", "-o",
                   str(st / "r.html"))
    assert other.exit_code == 0 and "against kde" in (st / "r.html").read_text()


def test_report_says_why_statistics_are_missing(cli, results):
    write_all(results, stat_records(skip=(("kde", "3"),)))
    assert invoke(cli, results, "report", "--suite", "st").exit_code == 0
    page = (results / "report-st.html").read_text()
    assert "Not computed: 1 missing cell(s) in digits" in page


def test_a_friedman_test_that_is_not_significant_is_said(tmp_path):
    rng = np.random.default_rng(0)
    noise = as_matrix(0.8 + 0.01 * rng.normal(size=(8, 4)), ["a", "b", "c", "d"], "noise")
    f = stats.friedman(noise)
    assert not f.significant and f.pvalue >= stats.ALPHA
    t = ranks_table([noise])
    assert t.cells.at[CD_ROW, "noise"] == "n.s."
    assert "noise: the Friedman test is not significant at α = 0.05" in t.caption
    assert bool(t.data["friedman_significant"].iloc[0]) is False
    assert stats.friedman(as_matrix(DEMSAR, DEMSAR_COLUMNS)).significant
    recs = [record("st", m, "digits", str(i), 0, {"image_auroc": float(noise.values.iat[i, j])})
            for j, m in enumerate(METHODS) for i in range(8)]
    named, skipped = figures.cd(write_all(tmp_path, recs).load(), "image_auroc", ["digits"], {})
    assert not skipped and len(named) == 1
    title = named[0][1].texts[0].get_text().replace("\n", " ")
    assert "Friedman test is not significant at α = 0.05" in title
    assert "no post-hoc test was run" in title
