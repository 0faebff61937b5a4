"""``bench plot`` commands write image files; ``bench report`` is one self-contained page."""

import re
import shutil
import subprocess

import pytest
from matplotlib.figure import Figure

from bench.report import figures
from tests.conftest import invoke
from tests.records import demo_results

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def synthetic(results):
    demo_results(results)
    return results


@pytest.mark.parametrize("args,name", [
    (("bars", "--suite", "demo", "--paper"), "bars-mvtec-image_auroc"),
    (("bars", "--suite", "demo", "--metric", "pixel_auroc_mkd"), "bars-mvtec-pixel_auroc_mkd"),
    (("heatmap", "--suite", "demo"), "heatmap-image_auroc"),
    (("ablation", "--suite", "abl", "--factor", "layers"), "ablation-layers-image_auroc"),
    (("ablation", "--suite", "abl", "--factor", "loss_terms"),
     "ablation-loss_terms-image_auroc"),
    (("curves", "--suite", "demo"), "curves-mvtec-image_auroc"),
    (("roc", "--suite", "demo", "--dataset", "mvtec", "--task", "bottle"), "roc-mvtec-bottle"),
    (("overlays", "--suite", "demo", "--task", "screw", "--seed", "1"), "overlays-mvtec-screw-"),
])
def test_plot_commands_write_images(cli, synthetic, args, name):
    res = invoke(cli, synthetic, "plot", *args)
    assert res.exit_code == 0, res.output
    suite = args[args.index("--suite") + 1]
    written = list((synthetic / "figures" / suite).glob(f"{name}*.png"))
    assert len(written) == 1, res.output
    assert written[0].read_bytes()[:8] == PNG and written[0].stat().st_size > 5000


def test_plot_to_another_folder_and_format(cli, synthetic, tmp_path):
    res = invoke(cli, synthetic, "plot", "heatmap", "--suite", "demo", "--out-dir",
                 str(tmp_path / "figs"), "--image-format", "pdf")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "figs" / "heatmap-image_auroc.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("args,needle", [
    (("overlays", "--suite", "demo"), "4 jobs match"),
    (("roc", "--suite", "demo"), "narrow with --dataset and --task"),
    (("overlays", "--suite", "demo", "--job", "0" * 16), "no successful job"),
    (("curves", "--suite", "abl"), "no record has a training history"),
])
def test_plot_selection_errors_are_one_line(cli, synthetic, args, needle):
    res = invoke(cli, synthetic, "plot", *args)
    assert res.exit_code == 2
    assert res.output.startswith("bench: error:") and needle in res.output


def test_roc_curve_comes_from_the_saved_scores(synthetic):
    from bench.records.store import Store

    store = Store(synthetic)
    [(name, fig)] = figures.roc(store, figures.JobFilter(dataset="mvtec", task="bottle"))
    assert isinstance(fig, Figure) and name == "roc-mvtec-bottle"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend and all(re.fullmatch(r"mkd s[01] \(\d+\.\d\)", t) for t in legend)


def test_report_is_self_contained(cli, synthetic):
    res = invoke(cli, synthetic, "report", "--suite", "demo")
    assert res.exit_code == 0, res.output
    page = (synthetic / "report-demo.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('src="data:image/png;base64,') >= 5  # bars, heatmap, curves, ROC, overlay
    srcs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert srcs and all(s.startswith("data:") for s in srcs)
    assert "<link" not in page and "<script" not in page and "http" not in page
    assert "MKD (paper)" in page and "Δ mkd" in page  # published columns where they exist
    abl = invoke(cli, synthetic, "report", "--suite", "abl", "-o", str(synthetic / "a.html"))
    assert abl.exit_code == 0
    text = (synthetic / "a.html").read_text()
    assert "Ablation: layers" in text and "Ablation: loss_terms" in text


def test_report_leaves_out_single_level_ablations_and_wraps_wide_tables(tmp_path):
    from bench.records.store import Store
    from bench.report.html import CSS, build_report
    from tests.records import record, write_all

    recs = [record("b", "knn", "d1", t, 0, {"image_auroc": 0.9}, overrides={"backbone": "r18"},
                   config={"backbone": "r18"}) for t in ("0", "1")]
    recs += [record("b", "knn", "d2", t, 0, {"image_auroc": 0.8}, config={"backbone": "w50"})
             for t in ("0", "1")]
    store = write_all(tmp_path, recs)
    page = build_report(Store(tmp_path), "b", task_orders={})
    assert "Ablation: backbone" not in page  # d1's table would have the one level r18
    assert page.count('<div class="table-wrap"><table class="bench-table">') >= 2
    assert ".table-wrap { overflow-x: auto;" in CSS
    assert store.root == tmp_path


def test_bar_figures_are_sized_to_their_bars():
    from bench.report.plots import MAX_WIDTH_IN, bar_layout

    per_panel, width, height = bar_layout(3, 5)  # three tasks of five columns: one panel
    assert per_panel == 3 and width == 6.0 and height < 5
    per_panel, width, height = bar_layout(11, 12)  # ten digits + Mean, twelve methods
    assert width <= MAX_WIDTH_IN and per_panel < 11 and height > 2 * 3.0
    panels = -(-11 // per_panel)
    assert per_panel * (panels - 1) < 11  # balanced: no empty last panel


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no headless chromium installed")
def test_report_renders_in_a_headless_browser(cli, synthetic, tmp_path):
    res = invoke(cli, synthetic, "report", "--suite", "demo")
    assert res.exit_code == 0, res.output
    shot = tmp_path / "report.png"
    subprocess.run([str(_browser()), "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1280,2000",
                    (synthetic / "report-demo.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 10_000
