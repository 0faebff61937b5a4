"""The settings beyond one-class (docs/settings.md): job identity, suites, the data each setting
builds, the records, the tables and the commands."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from bench.core.errors import UsageError
from bench.core.metrics import train_quantile_f1
from bench.core.settings import POOLED_ROW, UNIFIED_TASK
from bench.datasets import DATASETS
from bench.datasets.base import InputSpec, TaskData
from bench.datasets.corruptions import CORRUPTIONS, SEVERITIES, corrupt_images
from bench.datasets.settings import few_shot_indices
from bench.methods.base import Method, MethodConfig, RunContext, Scores
from bench.records.record import Record
from bench.records.store import Store
from bench.report.aggregate import UNIFIED_ROW_LABELS, build_tables, corruption_tables
from bench.report.render import render
from bench.run.execute import run_job
from bench.run.jobs import Job, expand
from bench.run.select import select_jobs
from bench.run.setting import Prepared, corruption_metrics
from bench.run.suites import parse_suite
from tests.conftest import invoke
from tests.records import record, write_all

TEXTURES = ["brick", "grass", "gravel"]


# ------------------------------------------------------------------------- identity, suites
def test_one_class_jobs_keep_their_ids_and_old_records_load_as_one_class():
    job = Job.make("ci", "cae", "digits", "0", 0)
    assert job.id == "39b2a3dc95ded953"  # the id `bench run --suite ci` gave before settings
    assert "setting" not in job.key() and job.setting == "one-class"
    old = record("ci", "cae", "digits", "0", 0, {"image_auroc": 0.9})
    assert "setting" not in old["job"]
    rec = Record.from_json(old)
    assert rec.job == job and rec.job.setting == "one-class"
    few = Job.make("ci", "cae", "digits", "0", 0, setting="few-shot", shots=4)
    assert few.id != job.id and few.key()["setting"] == "few-shot" and few.key()["shots"] == 4
    assert Job.from_key(json.loads(json.dumps(few.key()))) == few
    with pytest.raises(UsageError, match="shots go with the few-shot setting"):
        Job.make("ci", "cae", "digits", "0", 0, shots=4)
    bad = dict(old, job={**old["job"], "setting": "sideways"})
    with pytest.raises(ValueError, match="malformed"):
        Record.from_json(bad)


def test_suites_expand_settings_per_block_and_refuse_what_cannot_run():
    suite = parse_suite({
        "name": "s", "seeds": [0],
        "blocks": [
            {"datasets": {"textures": "all"}, "methods": {"kde": {}}, "settings": ["unified"]},
            {"datasets": {"textures": ["brick"]}, "methods": {"kde": {}},
             "settings": ["few-shot", "corrupted"], "shots": [1, 4], "seeds": [0, 1]},
        ]}, "test")
    jobs = expand(suite, {"textures": TEXTURES})
    got = sorted((j.setting, j.task, j.shots, j.seed) for j in jobs)
    assert got == [("corrupted", "brick", None, 0), ("corrupted", "brick", None, 1),
                   ("few-shot", "brick", 1, 0), ("few-shot", "brick", 1, 1),
                   ("few-shot", "brick", 4, 0), ("few-shot", "brick", 4, 1),
                   ("unified", UNIFIED_TASK, None, 0)]
    only = expand(suite, {"textures": TEXTURES}, settings=["unified"])
    # the second block's unified job covers its one listed category, with its own seeds
    assert [(j.setting, j.task, j.seed) for j in only] == [
        ("unified", "all", 0), ("unified", "brick", 0), ("unified", "brick", 1)]
    with pytest.raises(UsageError, match="unknown setting 'sideways'"):
        parse_suite({"name": "s", "datasets": {"digits": "all"}, "methods": {"kde": {}},
                     "settings": ["sideways"]}, "test")
    with pytest.raises(UsageError, match="shots are integers >= 1"):
        parse_suite({"name": "s", "datasets": {"digits": "all"}, "methods": {"kde": {}},
                     "shots": [0]}, "test")
    # digits is one-vs-rest: one model on every digit would have no anomalies left
    with pytest.raises(UsageError, match="dataset digits has no unified setting"):
        select_jobs(parse_suite({"name": "s", "datasets": {"digits": "all"},
                                 "methods": {"kde": {}}, "settings": ["unified"]}, "test"),
                    check_data=False)
    # asked for on the command line over a mixed suite: only the datasets that have one
    _, jobs = select_jobs("demo", methods=["kde"], settings=["unified"], check_data=False)
    assert {(j.dataset, j.task) for j in jobs} == {("textures", "all")}


def test_settings_demo_suite_has_every_setting_and_every_builtin_method():
    _, jobs = select_jobs("settings-demo", check_data=False)
    assert {j.setting for j in jobs} == {"unified", "few-shot", "corrupted"}
    assert {j.shots for j in jobs if j.setting == "few-shot"} == {1, 4}
    assert {j.dataset for j in jobs if j.setting == "few-shot"} == {"digits", "textures"}
    _, demo = select_jobs("demo", check_data=False)
    assert {j.method for j in jobs} == {j.method for j in demo}
    _, bench_jobs = select_jobs("benchmark", check_data=False, methods=["mkd"])
    assert {(j.dataset, j.setting) for j in bench_jobs} >= {
        ("mvtec", "unified"), ("visa", "unified"), ("mvtec", "few-shot"), ("visa", "few-shot")}


# ------------------------------------------------------------------------------- few-shot
def test_few_shot_draw_is_pinned_nested_and_independent_of_everything_but_seed_and_task():
    # pinned: the same indices on every machine (PCG64's stream, integer seeding only)
    assert few_shot_indices(60, 4, 0, "textures", "brick").tolist() == [3, 9, 12, 31]
    assert few_shot_indices(60, 1, 0, "textures", "brick").tolist() == [3]
    draws = {k: set(few_shot_indices(60, k, 3, "textures", "grass")) for k in (1, 2, 4, 8)}
    assert draws[1] <= draws[2] <= draws[4] <= draws[8]  # nested
    assert set(few_shot_indices(60, 4, 1, "textures", "brick")) != \
        set(few_shot_indices(60, 4, 0, "textures", "brick"))
    with pytest.raises(UsageError, match="k=61 but textures/brick has 60"):
        few_shot_indices(60, 61, 0, "textures", "brick")


def test_few_shot_draw_is_the_same_with_one_worker_or_two(cli, tmp_path):
    args = ["run", "--suite", "settings-demo", "--method", "kde", "--setting", "few-shot",
            "--shots", "4", "--task", "0", "--task", "brick"]
    draws = []
    for n in ("1", "2"):
        root = tmp_path / f"jobs{n}"
        assert invoke(cli, root, *args, "--jobs", n).exit_code == 0
        recs = Store(root).records("settings-demo")
        assert len(recs) == 4  # digits 0, textures brick; seeds 0 and 1
        draws.append({r.id: r.few_shot for r in recs})
    assert draws[0] == draws[1]
    brick0 = Job.make("settings-demo", "kde", "textures", "brick", 0, setting="few-shot",
                      shots=4)
    drawn = draws[0][brick0.id]
    assert drawn["indices"] == [3, 9, 12, 31] and drawn["pool"] == 60 and drawn["k"] == 4
    assert drawn["ids"] == [f"textures/brick/train/{i:03d}" for i in (3, 9, 12, 31)]


class _NeedsTwo(Method):
    """A method that declares it fits at least two training images (e.g. a PCA)."""

    Config = MethodConfig
    min_shots = 2

    def fit(self, train: TaskData, ctx: RunContext) -> _NeedsTwo:
        assert len(train) >= 2, "fit was called with fewer images than min_shots"
        self.mean_ = train.images.float().mean(dim=0)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        d = (test.images.float() - self.mean_).abs().mean(dim=(1, 2, 3))
        return Scores(image=d.double().numpy())


def test_a_few_shot_job_below_the_methods_min_shots_fails_in_one_line(tmp_path):
    name = "tests.test_settings:_NeedsTwo"
    one = Job.make("t", name, "digits", "0", 0, setting="few-shot", shots=1)
    summary = run_job(one, results_root=tmp_path, threshold_quantile=None)
    assert not summary.ok and summary.error is not None
    assert "k=1" in summary.error and "at least 2 training images" in summary.error
    assert "\n" not in summary.error.strip()
    two = Job.make("t", name, "digits", "0", 0, setting="few-shot", shots=2)
    assert run_job(two, results_root=tmp_path, threshold_quantile=None).ok


# -------------------------------------------------------------------------------- unified
class _Spy(Method):
    """Records what fit and score receive (the unified setting must not tell categories)."""

    Config = MethodConfig
    seen: ClassVar[list[tuple[str, TaskData]]] = []

    def fit(self, train: TaskData, ctx: RunContext) -> _Spy:
        _Spy.seen.append(("fit", train))
        self.mean_ = train.images.float().mean(dim=0)
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        _Spy.seen.append(("score", test))
        d = (test.images.float() - self.mean_).abs().mean(dim=(1, 2, 3))
        return Scores(image=d.double().numpy())


def test_a_unified_model_sees_every_category_and_never_a_category_name(tmp_path):
    _Spy.seen.clear()
    job = Job.make("t", "tests.test_settings:_Spy", "textures", UNIFIED_TASK, 0,
                   setting="unified")
    summary = run_job(job, results_root=tmp_path, threshold_quantile=None)
    assert summary.ok, summary.error
    fits = [d for kind, d in _Spy.seen if kind == "fit"]
    assert len(fits) == 1  # one model for every category
    train = fits[0]
    textures = DATASETS.get("textures")
    own = [textures.load(c, None, 0, InputSpec())[0] for c in TEXTURES]
    # not one category's images: every category's, all of them
    assert len(train) == sum(len(t) for t in own) == 180
    assert torch.equal(train.images, torch.cat([t.images for t in own]))
    for _, data in _Spy.seen:
        text = " ".join([data.name, *data.ids])
        assert not any(c in text for c in TEXTURES), data.name
    rec = Store(tmp_path).read(job)
    assert rec is not None and set(rec.category_metrics or {}) == set(TEXTURES)
    assert rec.data is not None and rec.data["train"] == 180
    assert {c: v["train"] for c, v in rec.data["categories"].items()} == dict.fromkeys(
        TEXTURES, 60)
    # the artifacts keep the files' ids, which say the category
    art = Store(tmp_path).read_artifacts("t", job.id)
    assert art is not None and any("brick" in str(i) for i in art.ids)


def _unified_record(seed: int, per: dict[str, float], pooled: float) -> dict[str, Any]:
    job = Job.make("u", "m", "textures", UNIFIED_TASK, seed, setting="unified")
    rec = record("u", "m", "textures", UNIFIED_TASK, seed, {"image_auroc": pooled})
    rec.update(id=job.id, job=job.key(),
               category_metrics={c: {"image_auroc": v} for c, v in per.items()})
    return rec


def test_unified_tables_keep_class_average_and_pooled_apart(tmp_path):
    # class average 0.8 and 0.9 over seeds; pooled 0.6 and 0.7: they must never trade places
    store = write_all(tmp_path, [
        _unified_record(0, {"brick": 0.7, "grass": 0.8, "gravel": 0.9}, 0.6),
        _unified_record(1, {"brick": 0.8, "grass": 0.9, "gravel": 1.0}, 0.7)])
    df = store.load("u")
    assert set(df.loc[df["pooled"], "task"]) == {POOLED_ROW}
    (table,) = build_tables(df, "image_auroc")
    col = table.columns[0]
    assert table.tasks == TEXTURES
    assert table.mean.at["Mean", col] == pytest.approx(0.85)  # the mean of the category rows
    assert table.mean.at[POOLED_ROW, col] == pytest.approx(0.65)  # the records' pooled values
    assert table.std.at[POOLED_ROW, col] == pytest.approx(0.05)
    text = render([table], "markdown")
    assert f"| {UNIFIED_ROW_LABELS['Mean']} " in text and "| 85.0 ± 5.0" in text
    assert f"| {UNIFIED_ROW_LABELS[POOLED_ROW]} " in text and "| 65.0 ± 5.0" in text
    assert "(unified)" in table.title and "not an average" in text


# ------------------------------------------------------------------------------ corrupted
def test_corruptions_are_deterministic_per_seed_and_leave_the_input_alone():
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    before = images.clone()
    for name in CORRUPTIONS:
        a = corrupt_images(images, name, 3, seed=0)
        assert torch.equal(a, corrupt_images(images, name, 3, seed=0)), name
        assert not torch.equal(a, images), name
    assert torch.equal(images, before)
    noisy = corrupt_images(images, "gaussian_noise", 3, seed=1)
    assert not torch.equal(noisy, corrupt_images(images, "gaussian_noise", 3, seed=0))
    # severity grows the damage (ImageNet-C's levels): mean absolute change in grey levels
    change = [float((corrupt_images(images, "contrast", s, 0).float() - images.float())
                    .abs().mean()) for s in SEVERITIES]
    assert change == sorted(change)


def test_corrupted_job_keeps_the_clean_scores_of_the_one_class_job(tmp_path):
    kw: dict[str, Any] = {"results_root": tmp_path}
    one = Job.make("c", "kde", "digits", "0", 0)
    bad = Job.make("c", "kde", "digits", "0", 0, setting="corrupted")
    assert run_job(one, **kw).ok and run_job(bad, **kw).ok
    store = Store(tmp_path)
    a, b = store.read(one), store.read(bad)
    assert a is not None and b is not None and b.corrupted is not None
    assert a.metrics == b.metrics  # the corruptions changed nothing of the clean scoring
    sa, sb = store.read_artifacts("c", one.id), store.read_artifacts("c", bad.id)
    assert sa is not None and sb is not None and np.array_equal(sa.scores, sb.scores)
    rows = b.corrupted["metrics"]
    assert {(r["corruption"], r["severity"]) for r in rows} == {
        (c, s) for c in CORRUPTIONS for s in SEVERITIES}
    assert b.threshold == a.threshold  # one threshold, from the clean training images
    cdf = store.load_corruptions("c")
    (table,) = corruption_tables(cdf, "image_auroc")
    assert table.tasks == list(CORRUPTIONS) and table.columns == ["clean", "1", "2", "3", "4",
                                                                  "5"]
    assert table.mean.at["gaussian_noise", "clean"] == pytest.approx(a.metrics["image_auroc"])


class _Fixed(Method):
    """Scores an image by its mean grey level (no learning)."""

    Config = MethodConfig

    def fit(self, train: TaskData, ctx: RunContext) -> _Fixed:
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        return Scores(image=test.images.double().mean(dim=(1, 2, 3)).numpy())


def test_thresholds_come_from_training_scores_never_from_test_labels():
    rng = np.random.default_rng(0)
    train_scores = rng.normal(0, 1, 50)
    test_scores = rng.normal(0.5, 1, 40)
    labels = (np.arange(40) >= 20).astype(int)
    _, first = train_quantile_f1(labels, test_scores, train_scores, 0.95)
    _, flipped = train_quantile_f1(1 - labels, test_scores, train_scores, 0.95)
    assert first["value"] == flipped["value"] == pytest.approx(np.quantile(train_scores, 0.95))
    # the corrupted copies are judged at that same threshold, whatever their labels say
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    test = TaskData(images, labels)
    data = Prepared(test, test, test, {})
    threshold = {"value": float(np.median(_Fixed(MethodConfig()).score(test, RunContext())
                                          .image))}
    out = corruption_metrics(_Fixed(MethodConfig()), data, RunContext(seed=0), threshold)
    swapped = Prepared(test, TaskData(images, 1 - labels), test, {})
    out2 = corruption_metrics(_Fixed(MethodConfig()), swapped, RunContext(seed=0), threshold)
    for a, b in zip(out["metrics"], out2["metrics"], strict=True):
        scores = _Fixed(MethodConfig()).score(
            TaskData(corrupt_images(images, a["corruption"], a["severity"], 0), labels),
            RunContext()).image
        predicted = scores >= threshold["value"]
        tp = int((predicted & (labels == 1)).sum())
        f1 = 2 * tp / (predicted.sum() + labels.sum())
        assert a["image_f1_at_train_quantile"] == pytest.approx(f1)
        assert a["image_auroc"] == pytest.approx(1 - b["image_auroc"])


# ---------------------------------------------------------------------------- the commands
def test_commands_select_and_show_settings(cli, results, tmp_path):
    suite = tmp_path / "sd.yaml"
    suite.write_text("name: sd\nseeds: [0]\nblocks:\n"
                     "  - {datasets: {textures: all}, methods: {kde: {}}, settings: [unified]}\n"
                     "  - {datasets: {textures: [brick]}, methods: {kde: {}},"
                     " settings: [corrupted]}\n")
    assert invoke(cli, results, "run", "--suite", str(suite), "--all").exit_code == 0
    res = invoke(cli, results, "table", "--suite", "sd", "--setting", "unified")
    assert res.exit_code == 0 and "textures — image_auroc (unified)" in res.output
    assert "(corrupted)" not in res.output and "Pooled (whole test set)" in res.output
    res = invoke(cli, results, "table", "--suite", "sd", "--corruptions",
                 "--metric", "image_f1_at_train_quantile")
    assert res.exit_code == 0 and "| jpeg " in res.output and "severity 5" in res.output
    res = invoke(cli, results, "table", "--suite", "sd", "--ranks")
    assert res.exit_code == 2 and "choose one with --setting" in res.output
    res = invoke(cli, results, "plot", "corruptions", "--suite", "sd", "--out-dir",
                 str(tmp_path / "fig"))
    assert res.exit_code == 0 and (tmp_path / "fig" / "corruptions-textures-image_auroc-kde.png"
                                   ).is_file()
    res = invoke(cli, results, "status", "--suite", str(suite), "--setting", "unified")
    assert res.exit_code == 0 and "pending" in res.output
    base = tmp_path / "base.csv"
    res = invoke(cli, results, "baseline", "update", "--suite", str(suite), "-o", str(base))
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(base)
    assert set(frame["setting"]) == {"unified", "corrupted"}
    assert set(frame.loc[frame["setting"] == "unified", "task"]) == {*TEXTURES, "Pooled"}
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert "regression" not in res.output.split("PASS")[0] and " 0 missing" in res.output
    res = invoke(cli, results, "check", "--suite", str(suite), "--setting", "unified",
                 "--baseline", str(base))
    assert " 0 missing" in res.output
    res = invoke(cli, results, "report", "--suite", "sd", "-o", str(tmp_path / "r.html"))
    assert res.exit_code == 0
    page = (tmp_path / "r.html").read_text("utf-8")
    assert "Corruptions (corrupted setting)" in page and "Pooled (whole test set)" in page
