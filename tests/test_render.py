"""Every format renders, says what produced the numbers, and LaTeX compiles."""

import io
import shutil
import subprocess

import pandas as pd
import pytest

from bench.report.aggregate import ablation_tables, build_tables, method_table, with_reference
from bench.report.reference import load_reference
from bench.report.render import caption, latex_escape, render
from tests.records import demo_results, mkd_record, record, write_all


@pytest.fixture
def tables(tmp_path):
    df = demo_results(tmp_path).load()
    out = build_tables(df, "image_auroc", datasets=["mvtec"], reference=load_reference(),
                       kinds=("paper", "rerun"))
    out += build_tables(df, "pixel_auroc_mkd", datasets=["mvtec"], reference=load_reference())
    out += ablation_tables(df, "digits", "image_auroc", "layers")
    return out


def test_caption_states_expert_checkpoint_protocol_seeds_suite(tables):
    cap = caption(tables[1])  # pixel_auroc_mkd on mvtec
    for needle in ("vgg16:random:0", "final (last epoch)", "128 px",
                   "defective test images only", "seeds 0,1", "suite demo", "Table 4"):
        assert needle in cap, needle
    assert "held fixed: loss_terms=total, score_layers=trained" in caption(tables[2])


def test_markdown(tables):
    text = render(tables, "markdown")
    assert text.count("### ") == 3
    bottle = next(ln for ln in text.splitlines() if ln.startswith("| bottle"))
    cells = [c.strip() for c in bottle.strip("|").split("|")]
    # mkd (2 seeds), ocsvm, paper, DRA re-run, Paddle re-run, Δ = 91.0 − 99.39
    assert cells == ["bottle", "**91.0 ± 1.0**", "80.0", "99.4", "99.2", "99.3", "−8.4"]
    screw = next(ln for ln in text.splitlines() if ln.startswith("| screw"))
    assert [c.strip() for c in screw.strip("|").split("|")][2] == "–"  # ocsvm has no screw


def test_csv_is_long_and_carries_kind_and_provenance(tables):
    df = pd.read_csv(io.StringIO(render(tables, "csv")), dtype={"task": str})
    assert list(df.columns[:7]) == ["dataset", "metric", "task", "method", "mean", "std",
                                    "n_seeds"]
    assert set(df["kind"]) == {"measured", "reference", "delta"}
    cell = df[(df["task"] == "bottle") & (df["method"] == "mkd")
              & (df["metric"] == "image_auroc")]
    assert cell["mean"].iloc[0] == pytest.approx(0.91)
    assert cell["expert"].iloc[0] == "vgg16:random:0"
    mvtec = df[df["dataset"] == "mvtec"]
    assert mvtec["caption"].str.contains("suite demo").all()
    assert df[df["dataset"] == "digits"]["caption"].str.contains("suite abl").all()


def test_html_has_captions_and_no_external_resources(tables):
    text = render(tables, "html")
    assert text.count("<caption>") == 3 and "<b>91.0 ± 1.0</b>" in text
    assert "http" not in text and "src=" not in text


def test_latex_structure(tables):
    text = render(tables, "latex")
    assert text.count(r"\begin{table}") == 3 and text.count(r"\toprule") == 3
    assert "\\midrule\nMean &" in text
    assert r"\textbf{91.0 $\pm$ 1.0}" in text and "$-$8.4" in text
    assert "metal_nut" not in text  # underscores escaped everywhere
    assert latex_escape("a_b & 50% Δ±λ") == r"a\_b \& 50\% $\Delta$$\pm$$\lambda$"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles(tables, tmp_path):
    doc = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
           + render(tables, "latex") + "\n\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc, encoding="utf-8")
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000


def test_missing_cells_render_as_missing_in_every_format(tmp_path):
    recs = [record("s", "a", "d", t, 0, {"image_auroc": 0.9}) for t in ("x", "y")]
    recs.append(record("s", "b", "d", "x", 0, {"image_auroc": 0.5}))
    t = method_table(write_all(tmp_path, recs).load(), "d", "image_auroc")
    assert "| –" in render([t], "markdown").replace("–    ", "–")
    assert "& --" in render([t], "latex")
    assert "<td>–</td>" in render([t], "html")
    csv = pd.read_csv(io.StringIO(render([t], "csv")))
    assert csv["mean"].isna().sum() == 2  # b/y and b's Mean


def test_paper_note_for_a_dataset_without_published_numbers(tmp_path):
    df = write_all(tmp_path, [mkd_record("s", "mnist", "3", 0, 0.9)]).load()
    [t] = build_tables(df, "image_auroc", reference=load_reference())
    assert t.columns == ["mkd"]
    text = render([t], "markdown")
    assert "not found" in text and "UNVERIFIED" in text


def test_with_reference_is_pure(tmp_path):
    df = write_all(tmp_path, [mkd_record("s", "cifar10", "3", 0, 0.77)]).load()
    t = method_table(df, "cifar10", "image_auroc")
    t2 = with_reference(t, load_reference())
    assert t.columns == ["mkd"] and t2.columns == ["mkd", "MKD (paper)", "Δ mkd"]
    assert t2.mean.loc["3", "MKD (paper)"] == pytest.approx(0.7702)


HISTORY_METRICS = {"image_auroc_converged_mean": "converged mean",
                   "image_auroc_converged_std": "converged std",
                   "image_auroc_converged_n": "converged n",
                   "image_auroc_best_on_test_optimistic": "best on test, optimistic"}


@pytest.fixture
def history_df(tmp_path):
    from bench.run.execute import summarize_history
    recs = []
    for task, base in (("bottle", 0.9), ("screw", 0.7)):
        hist = [{"epoch": e, "image_auroc": base - 0.1 + 0.02 * e} for e in range(0, 10, 2)]
        recs.append(record("h", "mkd", "mvtec", task, 0,
                           {"image_auroc": base, **summarize_history(hist)},
                           expert="vgg16:random:0", history=hist))
        recs.append(record("h", "ocsvm", "mvtec", task, 0,
                           {"image_auroc": base - 0.1, **summarize_history(hist)}))
    return write_all(tmp_path, recs).load()


@pytest.mark.parametrize("metric", sorted(HISTORY_METRICS))
def test_history_metric_captions_and_headers_state_its_policy(history_df, metric):
    policy = HISTORY_METRICS[metric]
    (t,) = build_tables(history_df, metric, reference=load_reference())
    cap = caption(t)
    assert "final (last epoch)" not in cap  # the record's checkpoint is not what is shown
    assert f"checkpoint: {policy}" in cap
    for fmt in ("markdown", "html", "latex"):
        text = render([t], fmt)
        assert f"mkd ({policy})" in text and f"ocsvm ({policy})" in text, fmt
    if metric.endswith(("_converged_mean", "_best_on_test_optimistic")):  # compared with the paper
        head = t.header("Δ mkd")
        assert head == f"Δ mkd ({policy}) − MKD (paper) (mean after convergence)"
        assert f"Δ = ours ({policy}) − MKD (paper) (mean after convergence)" in cap
    else:
        assert "Δ mkd" not in t.columns


def test_final_checkpoint_metric_keeps_plain_titles_and_names_the_policies(history_df):
    (t,) = build_tables(history_df, "image_auroc", reference=load_reference())
    assert t.header("mkd") == "mkd" and "checkpoint: final (last epoch)" in caption(t)
    assert t.header("Δ mkd") == "Δ mkd (final) − MKD (paper) (mean after convergence)"


@pytest.fixture
def unequal_seeds_df(tmp_path):
    recs = [record("u", "mkd", "mvtec", "bottle", s, {"image_auroc": 0.9 + 0.02 * s})
            for s in (0, 1, 2)]
    recs.append(record("u", "mkd", "mvtec", "screw", 0, {"image_auroc": 0.7}))
    recs += [record("u", "ocsvm", "mvtec", t, 0, {"image_auroc": 0.6}) for t in ("bottle", "screw")]
    return write_all(tmp_path, recs).load()


def test_mean_over_unequal_seed_counts_is_missing_unless_asked(unequal_seeds_df):
    (t,) = build_tables(unequal_seeds_df, "image_auroc")
    assert pd.isna(t.mean.loc["Mean", "mkd"])  # 3 seeds on bottle, 1 on screw
    assert t.mean.loc["Mean", "ocsvm"] == pytest.approx(0.6)  # equal counts: shown
    cap = caption(t)
    assert "Mean – where tasks have unequal seed counts (mkd: 1–3 seeds per task)" in cap
    assert "seeds 0 (ocsvm); 0,1,2 (mkd)" in cap  # seeds per column where they differ
    mean_row = next(ln for ln in render([t], "markdown").splitlines() if ln.startswith("| Mean"))
    assert [c.strip() for c in mean_row.strip("|").split("|")][1] == "–"
    (shown,) = build_tables(unequal_seeds_df, "image_auroc", allow_unequal_seeds=True)
    assert shown.mean.loc["Mean", "mkd"] == pytest.approx((0.92 + 0.7) / 2)
    assert "Mean over tasks with unequal seed counts (mkd: 1–3 seeds per task), shown as asked" \
        in caption(shown)


def test_cli_allow_unequal_seeds(unequal_seeds_df, tmp_path):
    from click.testing import CliRunner

    from bench.cli import main
    args = ["--results", str(tmp_path), "table", "--suite", "u"]
    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 0, plain.output
    assert "unequal seed counts" in plain.output and "| Mean   | –" in plain.output
    asked = CliRunner().invoke(main, [*args, "--allow-unequal-seeds"])
    assert asked.exit_code == 0 and "shown as asked" in asked.output


def test_pixel_auroc_mkd_caption_says_whose_maps(tables):
    cap = caption(tables[1])
    assert "official per-image normalization clip((g − min)/(p99 − min), 0, 1)" in cap
    assert "every other method on its standard maps min-max normalized per image" in cap
    assert "min-max normalized per image" not in caption(tables[0])  # image AUROC: no maps
