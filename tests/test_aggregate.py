"""Aggregation math on synthetic records: means recomputed, std, bold, Δ, missing cells."""

import math

import numpy as np
import pandas as pd
import pytest

from bench.report.aggregate import (
    DELTA,
    MEAN_ROW,
    REFERENCE,
    ablation_factors,
    ablation_tables,
    best_per_row,
    build_tables,
    method_table,
    with_reference,
)
from bench.report.reference import COLUMNS
from tests.records import mkd_record, record, write_all


def frame(tmp_path, recs):
    return write_all(tmp_path, recs).load()


def test_mean_std_over_seeds_and_recomputed_mean_row(tmp_path):
    recs = []
    for seed, vals in ((0, {"a": 0.8, "b": 0.6}), (1, {"a": 0.9, "b": 0.7}),
                       (2, {"a": 1.0, "b": 0.5})):
        for task, v in vals.items():
            recs.append(record("s", "m", "d", task, seed, {"image_auroc": v}))
    t = method_table(frame(tmp_path, recs), "d", "image_auroc")
    assert t.mean.loc["a", "m"] == pytest.approx(0.9)
    assert t.std.loc["a", "m"] == pytest.approx(np.std([0.8, 0.9, 1.0]))  # ddof=0, over seeds
    assert t.mean.loc[MEAN_ROW, "m"] == pytest.approx((0.9 + 0.6) / 2)  # from the rows
    # the Mean row's std: spread over seeds of the per-seed means over tasks
    assert t.std.loc[MEAN_ROW, "m"] == pytest.approx(np.std([0.7, 0.8, 0.75]))
    assert t.n_seeds.loc["a", "m"] == 3 and t.n_seeds.loc[MEAN_ROW, "m"] == 3
    assert t.provenance["seeds"] == ["0", "1", "2"]


def test_missing_task_makes_the_mean_missing_not_smaller(tmp_path):
    recs = [record("s", "m1", "d", t, 0, {"image_auroc": 0.9}) for t in ("1", "2", "10")]
    recs += [record("s", "m2", "d", "1", 0, {"image_auroc": 0.5}),
             record("s", "m2", "d", "2", 0, {"image_auroc": 0.5}),
             record("s", "m2", "d", "10", 0, {}, status="failed")]
    t = method_table(frame(tmp_path, recs), "d", "image_auroc")
    assert list(t.mean.index) == ["1", "2", "10", MEAN_ROW]  # natural order
    assert math.isnan(t.mean.loc["10", "m2"]) and math.isnan(t.mean.loc[MEAN_ROW, "m2"])
    assert t.mean.loc[MEAN_ROW, "m1"] == pytest.approx(0.9)


def test_same_job_in_two_suites_counts_once(tmp_path):
    recs = [record(s, "m", "d", "a", 0, {"image_auroc": v}) for s, v in (("x", 0.8), ("y", 0.8))]
    t = method_table(frame(tmp_path, recs), "d", "image_auroc")
    assert t.n_seeds.loc["a", "m"] == 1 and t.provenance["suite"] == ["x", "y"]


def test_variants_are_columns_and_best_is_per_row(tmp_path):
    recs = [record("s", "ocsvm", "d", "a", 0, {"image_auroc": 0.7}),
            record("s", "ocsvm", "d", "a", 0, {"image_auroc": 0.9}, overrides={"nu": 0.5}),
            record("s", "kde", "d", "a", 0, {"image_auroc": 0.9})]
    t = method_table(frame(tmp_path, recs), "d", "image_auroc")
    assert t.columns == ["kde", "ocsvm", "ocsvm [nu=0.5]"]
    best = best_per_row(t)
    assert best.loc["a"].tolist() == [True, False, True]  # ties are both bold


def reference_frame(rows):
    base = dict.fromkeys(COLUMNS, "")
    df = pd.DataFrame([{**base, "kind": "paper", "label": "MKD (paper)", "method": "mkd",
                        "metric": "image_auroc", "status": "verified", "source": "src",
                        "n_runs": math.nan, "std_pct": math.nan, **r} for r in rows])
    df["value_pct"] = pd.to_numeric(df["value_pct"])
    return df


def test_paper_column_delta_and_partial_mean(tmp_path):
    recs = [mkd_record("s", "mvtec", t, seed, v + 0.01 * seed)
            for t, v in (("bottle", 0.95), ("screw", 0.75)) for seed in (0, 1)]
    recs.append(record("s", "ocsvm", "mvtec", "bottle", 0, {"image_auroc": 0.99}))
    ref = reference_frame([
        {"dataset": "mvtec", "task": "bottle", "value_pct": 99.0},
        {"dataset": "mvtec", "task": "screw", "value_pct": 80.0},
        {"dataset": "mvtec", "task": "zipper", "value_pct": 90.0},
        {"dataset": "mvtec", "task": "Mean", "value_pct": 89.67},
    ])
    t = with_reference(method_table(frame(tmp_path, recs), "mvtec", "image_auroc"), ref)
    assert t.kind("MKD (paper)") == REFERENCE and t.kind("Δ mkd") == DELTA
    assert t.mean.loc["bottle", "MKD (paper)"] == pytest.approx(0.99)
    # the published mean is recomputed over the rows shown, not the 3 published tasks
    assert t.mean.loc[MEAN_ROW, "MKD (paper)"] == pytest.approx(0.895)
    assert t.mean.loc["screw", "Δ mkd"] == pytest.approx(0.755 - 0.80)
    assert t.mean.loc[MEAN_ROW, "Δ mkd"] == pytest.approx((0.955 + 0.755) / 2 - 0.895)
    assert "Δ ocsvm" not in t.columns  # Δ only against the paper's own method
    assert any("2 published task(s) shown" in n and "89.67" in n for n in t.notes)
    assert best_per_row(t).loc["bottle"].tolist() == [False, True, False, False]  # ocsvm 99


def test_full_coverage_uses_stated_std_and_wildcard_task(tmp_path):
    recs = [mkd_record("s", "headct", "hemorrhage", 0, 0.7)]
    ref = reference_frame([{"dataset": "headct", "task": "*", "value_pct": 79.3,
                            "std_pct": 1.7, "kind": "rerun", "label": "re-run"}])
    t = with_reference(method_table(frame(tmp_path, recs), "headct", "image_auroc"), ref,
                       kinds=("rerun",))
    assert t.mean.loc["hemorrhage", "re-run"] == pytest.approx(0.793)
    assert t.std.loc["hemorrhage", "re-run"] == pytest.approx(0.017)
    assert not any(k == DELTA for k in t.kinds.values())  # no Δ against a re-run


def test_not_found_tables_become_a_note_not_a_column(tmp_path):
    recs = [mkd_record("s", "mnist", "3", 0, 0.9)]
    ref = reference_frame([{"dataset": "mnist", "task": "Mean", "value_pct": math.nan,
                            "status": "UNVERIFIED", "note": "not found"}])
    t = with_reference(method_table(frame(tmp_path, recs), "mnist", "image_auroc"), ref)
    assert t.columns == ["mkd"]
    assert any("not found" in n and "UNVERIFIED" in n for n in t.notes)


def test_unverified_values_stay_marked(tmp_path):
    recs = [mkd_record("s", "mnist", "3", 0, 0.9)]
    ref = reference_frame([{"dataset": "mnist", "task": "3", "value_pct": 95.0,
                            "status": "UNVERIFIED"}])
    t = with_reference(method_table(frame(tmp_path, recs), "mnist", "image_auroc"), ref)
    assert "MKD (paper) UNVERIFIED" in t.columns and "Δ mkd" in t.columns


def ablation_records():
    recs = []
    for task, v in (("0", 0.9), ("1", 0.8)):
        recs.append(mkd_record("abl", "digits", task, 0, v))  # baseline: every default
        for k, layers in enumerate((["pool5"], ["pool4", "pool5"], ["pool3"],
                                    ["pool2", "pool3", "pool4", "pool5"])):
            recs.append(mkd_record("abl", "digits", task, 0, 0.5 + 0.1 * k, layers=layers,
                                   score_layers="trained"))
        recs.append(mkd_record("abl", "digits", task, 0, v - 0.3, loss_terms="direction"))
        recs.append(mkd_record("abl", "digits", task, 0, v - 0.2, lamda=0.5))
    return recs


def test_ablation_levels_and_held_fixed_fields(tmp_path):
    df = frame(tmp_path, ablation_records())
    assert ablation_factors(df) == ["lamda", "layers", "loss_terms", "score_layers"]
    [layers] = ablation_tables(df, "digits", "image_auroc", "layers")
    # sorted by number of layers; the baseline (official scoring) is not mixed in
    assert layers.columns == ["pool3", "pool5", "pool4+pool5", "pool2+pool3+pool4+pool5"]
    assert layers.mean.loc[MEAN_ROW, "pool2+pool3+pool4+pool5"] == pytest.approx(0.8)
    assert any("score_layers=trained" in n for n in layers.notes)
    [loss] = ablation_tables(df, "digits", "image_auroc", "loss_terms")
    # the baseline supplies the default level; the λ and layer variants stay out
    assert loss.columns == ["direction", "total"]
    assert loss.mean.loc["0", "total"] == pytest.approx(0.9)
    assert loss.mean.loc[MEAN_ROW, "direction"] == pytest.approx(0.55)
    [lam] = ablation_tables(df, "digits", "image_auroc", "lamda")
    assert lam.columns == ["0.01", "0.5"]
    assert ablation_tables(df, "digits", "image_auroc", "cloner") == []


def test_build_tables_one_per_dataset(tmp_path):
    recs = [record("s", "m", d, "a", 0, {"image_auroc": 0.5}) for d in ("x", "y")]
    tables = build_tables(frame(tmp_path, recs), "image_auroc")
    assert [t.dataset for t in tables] == ["x", "y"]


def test_no_bold_without_a_comparison(tmp_path):
    t = method_table(frame(tmp_path, [record("s", "m", "d", "a", 0, {"image_auroc": 0.5})]),
                     "d", "image_auroc")
    assert not best_per_row(t).any().any()


def test_values_that_print_the_same_are_bold_together(tmp_path):
    recs = [record("s", "a", "d", "x", 0, {"image_auroc": 0.99991}),
            record("s", "b", "d", "x", 0, {"image_auroc": 0.99989}),
            record("s", "c", "d", "x", 0, {"image_auroc": 0.9})]
    t = method_table(frame(tmp_path, recs), "d", "image_auroc")
    assert best_per_row(t).loc["x"].tolist() == [True, False, False]
    assert best_per_row(t, digits=1).loc["x"].tolist() == [True, True, False]


def test_history_metrics_compare_with_the_published_base_metric(tmp_path):
    from bench.report.reference import load_reference

    recs = [record("s", "mkd", "cifar10", "3", 0,
                   {"image_auroc": 0.70, "image_auroc_converged_mean": 0.76})]
    df = frame(tmp_path, recs)
    t = with_reference(method_table(df, "cifar10", "image_auroc_converged_mean"),
                       load_reference())
    assert t.mean.loc["3", "Δ mkd"] == pytest.approx(0.76 - 0.7702)
    assert any("after convergence" in n for n in t.notes)  # the paper's protocol is stated
    demo = frame(tmp_path / "x", [record("s", "mkd", "textures", "brick", 0,
                                         {"image_auroc": 0.5})])
    t = with_reference(method_table(demo, "textures", "image_auroc"), load_reference())
    assert t.notes == ["no published MKD numbers for textures"]


def test_table_4_compares_pixel_converged_means_like_with_like(tmp_path):
    """MKD's pixel histories give pixel_auroc_mkd_converged_mean, which meets the paper's Table 4
    (a mean after convergence); the final-checkpoint table points to it."""
    from bench.report.reference import load_reference
    from bench.report.render import caption

    recs = [record("s", "mkd", "mvtec", "bottle", 0,
                   {"pixel_auroc_mkd": 0.95, "pixel_auroc_mkd_converged_mean": 0.94},
                   pixel_resolution=128)]
    df = frame(tmp_path, recs)
    t = with_reference(method_table(df, "mvtec", "pixel_auroc_mkd_converged_mean"),
                       load_reference())
    assert t.mean.loc["bottle", "Δ mkd"] == pytest.approx(0.94 - 0.9632)
    assert "converged mean" in t.headers["Δ mkd"]
    assert "mean after convergence" in t.headers["Δ mkd"]
    text = caption(t)
    assert "model's input size (128 px)" in text and "defective test images only" in text
    final = with_reference(method_table(df, "mvtec", "pixel_auroc_mkd"), load_reference())
    assert any("--metric pixel_auroc_mkd_converged_mean" in n for n in final.notes)
    assert not any("like for like" in n for n in t.notes)


def test_pixel_captions_name_the_resolution_they_were_scored_at(tmp_path):
    from bench.report.render import caption

    recs = [record("s", "padim", "mvtec", "bottle", 0,
                   {"pixel_auroc": 0.9, "pixel_auroc_model_res": 0.92}, pixel_resolution=128)]
    df = frame(tmp_path, recs)
    native = caption(method_table(df, "mvtec", "pixel_auroc"))
    assert "ground truth's own resolution (900x900 px)" in native
    assert "model size 128 px" in native and "thresholds: exact" in native
    small = caption(method_table(df, "mvtec", "pixel_auroc_model_res"))
    assert "model's input size (128 px)" in small and "can vanish" in small


def test_column_titles_leave_weights_to_the_caption_unless_ambiguous():
    from bench.report.aggregate import short_labels

    pairs = [("mkd", "expert_weights=random"), ("dn2", "backbone=resnet18,backbone_weights=random")]
    ovs = ['{"expert_weights": "random"}', '{"backbone": "resnet18", "backbone_weights": "random"}']
    assert short_labels(pairs, ovs) == ["mkd", "dn2 [backbone=resnet18]"]
    # two runs differing only in their weights keep their full titles (never merged)
    pairs = [("mkd", "expert_weights=random"), ("mkd", "expert_weights=imagenet"), ("kde", "")]
    ovs = ['{"expert_weights": "random"}', '{"expert_weights": "imagenet"}', "{}"]
    assert short_labels(pairs, ovs) == ["mkd [expert_weights=random]",
                                        "mkd [expert_weights=imagenet]", "kde"]
