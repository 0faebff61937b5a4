"""Bad values, missing data and empty selections stop ``bench run`` before any job.

Every case through the CLI: one line ``bench: error: ...``, its exit code (2 for usage, 1 for
missing data), no traceback, and nothing written to the results folder (no record, no claim).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import torch

from bench.core.config import (
    FileOr,
    Range,
    check_fields,
    check_files,
    declared,
    require,
)
from bench.core.errors import DataMissingError, UsageError
from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.run.select import select_jobs
from tests.conftest import invoke
from tests.datasets.fakes import fake_mvtec_category

DEMO = ("run", "--suite", "demo", "--dataset", "digits", "--task", "3")


def _suite(tmp_path: Path, text: str) -> str:
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _assert_one_line_and_nothing_written(res, results: Path, code: int, needle: str) -> None:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("bench: error:"), res.output
    assert needle in lines[0], lines[0]
    assert not results.exists() or not any(p.is_file() for p in results.rglob("*"))


@pytest.mark.parametrize("args,needle", [
    (("--method", "ocsvm", "--set", "nu=2"),
     "ocsvm on digits: nu=2.0 is out of range (allowed: 0 < nu <= 1)"),
    (("--method", "ocsvm", "--set", "gamma=abc"),
     "ocsvm on digits: gamma: cannot use 'abc'; expected float or one of ['scale', 'auto']"),
    (("--method", "ocsvm", "--set", "gamma=0"), "gamma=0.0 is out of range (allowed: gamma > 0)"),
    (("--method", "ocsvm", "--set", "kernel=precomputed"), "kernel: 'precomputed' is not one of"),
    (("--method", "kde", "--set", "bandwidth=-1"), "bandwidth=-1.0 is out of range"),
    (("--method", "iforest", "--set", "max_features=0"), "max_features=0.0 is out of range"),
    (("--method", "cae", "--set", "lr=0"), "cae on digits: lr=0.0 is out of range"),
    (("--method", "dsvdd", "--set", "channels=[8,0]"),
     "channels=[8, 0] is out of range (allowed: each of channels >= 1)"),
    (("--method", "mkd", "--set", "lamda=-0.5"), "mkd on digits: lamda=-0.5 is out of range"),
    (("--method", "mkd", "--set", "epochs=0"), "epochs=0 is out of range (allowed: epochs >= 1)"),
    (("--method", "mkd", "--set", "expert_weights=/no/such/file.pth"),
     "mkd on digits: expert_weights='/no/such/file.pth': no such file (allowed: 'imagenet', "
     "'random' or the path of a state_dict file)"),
    (("--method", "padim", "--set", "backbone_weights=/no/such/file.pth"),
     "padim on digits: backbone_weights='/no/such/file.pth': no such file"),
    (("--method", "padim", "--set", "layers=[layer9]"), "unknown layer(s) layer9 for resnet18"),
    (("--method", "patchcore", "--set", "coreset_ratio=1.5"), "coreset_ratio=1.5 is out of range"),
    (("--method", "stfpm", "--set", "momentum=1"), "momentum=1.0 is out of range"),
    (("--method", "dn2", "--set", "k=0"), "k=0 is out of range (allowed: k >= 1)"),
])
def test_bad_values_stop_the_run_before_any_job(cli, results, args, needle):
    res = invoke(cli, results, *DEMO, *args)
    _assert_one_line_and_nothing_written(res, results, 2, needle)


def test_an_existing_weights_file_passes_selection(tmp_path):
    weights = tmp_path / "expert.pth"
    torch.save({"any.weight": torch.zeros(1)}, weights)  # whether it fits is the job's to find
    _, jobs = select_jobs("demo", methods=["mkd"], datasets=["digits"], tasks=["3"],
                          overrides={"expert_weights": str(weights)})
    assert len(jobs) == 1


def test_weight_files_are_checked_with_the_data_only():
    over = {"expert_weights": "/no/such/file.pth"}
    _, jobs = select_jobs("demo", methods=["mkd"], overrides=over, check_data=False)
    assert jobs
    with pytest.raises(UsageError, match="no such file"):
        select_jobs("demo", methods=["mkd"], overrides=over)


def test_an_empty_folder_dataset_stops_the_run(cli, results, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    suite = _suite(tmp_path, f'name: mine\ndatasets: {{"folder:{empty}": all}}\n'
                             "methods: {ocsvm: {}}\n")
    res = invoke(cli, results, "run", "--suite", suite, "--all")
    _assert_one_line_and_nothing_written(
        res, results, DataMissingError.exit_code,
        f"folder:{empty}: no category in {empty}: expected {empty}/<category>/{{train/good")
    # without the data check (a dry run) the selection still says why it is empty
    res = invoke(cli, results, "run", "--suite", suite, "--all", "--dry-run")
    _assert_one_line_and_nothing_written(res, results, 2, "have no tasks")


def test_a_category_without_training_images_stops_the_run(cli, results, tmp_path):
    data = tmp_path / "parts"
    fake_mvtec_category(data / "good_one", n_train=3, defects={"dent": 1})
    (data / "bare" / "train" / "good").mkdir(parents=True)
    (data / "bare" / "test" / "good").mkdir(parents=True)
    suite = _suite(tmp_path, f'name: mine\ndatasets: {{"folder:{data}": all}}\n'
                             "methods: {ocsvm: {}}\n")
    res = invoke(cli, results, "run", "--suite", suite, "--all")
    _assert_one_line_and_nothing_written(
        res, results, 1, f"{data / 'bare' / 'train' / 'good'} holds no images (expected "
                         f"{data / 'bare'}/{{train/good, test/<defect|good>}}")
    # a task list naming a category that is not there
    suite = _suite(tmp_path, f'name: mine\ndatasets: {{"folder:{data}": [nosuch]}}\n'
                             "methods: {ocsvm: {}}\n")
    res = invoke(cli, results, "run", "--suite", suite, "--all")
    _assert_one_line_and_nothing_written(res, results, 1, "category 'nosuch' not found")


def test_a_good_folder_passes_the_data_check(tmp_path):
    data = tmp_path / "parts"
    fake_mvtec_category(data / "widget", n_train=3, defects={"dent": 1})
    suite = _suite(tmp_path, f'name: mine\ndatasets: {{"folder:{data}": all}}\n'
                             "methods: {ocsvm: {}}\n")
    _, jobs = select_jobs(suite)
    assert [j.task for j in jobs] == ["widget"]


@pytest.mark.parametrize("text,needle", [
    ("name: x\ndatasets: {digits: all}\nmethods: {}\n", "'methods' is empty"),
    ("name: x\ndatasets: {}\nmethods: {ocsvm: {}}\n", "'datasets' is empty"),
    ("name: x\ndatasets: {digits: []}\nmethods: {ocsvm: {}}\n", "dataset 'digits' lists no tasks"),
    ("name: x\ndatasets: {digits: all}\nmethods: {ocsvm: []}\n", "non-empty list"),
    ("name: x\nseeds: []\ndatasets: {digits: all}\nmethods: {ocsvm: {}}\n", "'seeds' is empty"),
    ("name: x\nblocks:\n  - datasets: {digits: all}\n", "'methods' is empty"),
])
def test_a_suite_without_jobs_is_an_error(cli, results, tmp_path, text, needle):
    res = invoke(cli, results, "run", "--suite", _suite(tmp_path, text), "--all")
    _assert_one_line_and_nothing_written(res, results, 2, needle)


def test_a_selection_that_matches_no_job_is_an_error(cli, results, tmp_path):
    suite = _suite(tmp_path, "name: x\nblocks:\n"
                             "  - {datasets: {digits: all}, methods: {ocsvm: {}}}\n"
                             "  - {datasets: {textures: all}, methods: {kde: {}}}\n")
    res = invoke(cli, results, "run", "--suite", suite, "--method", "ocsvm",
                 "--dataset", "textures")
    _assert_one_line_and_nothing_written(
        res, results, 2, "matches the selection (method ocsvm; dataset textures)")
    assert select_jobs(suite, methods=["ocsvm"])[1]


# ---------------------------------------------------------------- no valid config is refused


def _families() -> list[str]:
    """Every dataset family, every family a method has presets for, and none."""
    families = {DATASETS.get(name).family for name in DATASETS.names()}
    families |= {f for n in METHODS.names() for f in METHODS.get(n).cls.presets}
    return sorted(families | {""})


def _weights(cls: type) -> dict[str, str]:
    """Random weights for every weights field (a method may require a choice)."""
    return {name: "random" for name, cs in declared(cls).items()
            if any(isinstance(c, FileOr) for c in cs)}


@pytest.mark.parametrize("name", METHODS.names())
def test_defaults_and_every_family_preset_pass_their_checks(name):
    spec = METHODS.get(name)
    for family in _families():
        check_files(spec.config(family))  # the defaults name keywords, never files
        spec.checked_config(family, _weights(spec.cls.Config))
    spec.checked_config("", {**_weights(spec.cls.Config), **spec.test_overrides})
    spec.checked_config("", dict(spec.cls.perf_profile.offline))  # bench perf's settings


def test_shipped_ci_suite_validates_with_and_without_its_data():
    _, jobs = select_jobs("ci", check_data=False)
    assert jobs and {j.dataset for j in jobs} == {"digits", "textures"}
    assert select_jobs("ci")[1] == jobs  # embedded data: the data check runs offline


def _numbers_in(tp: object) -> bool:
    if tp in (int, float):
        return True
    return any(_numbers_in(a) for a in typing.get_args(tp) if not isinstance(a, str))


@pytest.mark.parametrize("name", METHODS.names())
def test_every_numeric_field_declares_its_range(name):
    cls = METHODS.get(name).cls.Config
    hints = typing.get_type_hints(cls)
    numeric = {f.name for f in dataclasses.fields(cls) if _numbers_in(hints[f.name])}
    ranged = {f for f, cs in declared(cls).items() if any(isinstance(c, Range) for c in cs)}
    assert numeric <= ranged, f"declare a Range on {sorted(numeric - ranged)}"


# ------------------------------------------------------------------------- the helpers


def test_range_describes_itself_and_checks_each_number():
    assert Range(gt=0, le=1).describe("nu") == "0 < nu <= 1"
    assert Range(ge=1).describe("epochs") == "epochs >= 1"
    assert Range(gt=0).describe("lr") == "lr > 0"
    assert Range(ge=0, lt=1).describe("m") == "0 <= m < 1"
    assert Range(le=5).describe("x") == "x <= 5"

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        sizes: tuple[typing.Annotated[int, Range(ge=1)], ...] = (1, 2)
        rate: typing.Annotated[float | str | None, Range(gt=0)] = "auto"

    check_fields(Cfg())
    check_fields(Cfg(rate=None))
    check_fields(Cfg(rate=0.5))
    with pytest.raises(UsageError, match=r"sizes=\[1, 0\] is out of range \(allowed: each of "
                                         r"sizes >= 1\)"):
        check_fields(Cfg(sizes=(1, 0)))
    with pytest.raises(UsageError, match=r"rate=0 is out of range \(allowed: rate > 0\)"):
        check_fields(Cfg(rate=0))


def test_file_or_accepts_keywords_and_existing_files(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Cfg:
        weights: typing.Annotated[str | None, FileOr(("random",), "a weights file")] = None

    existing = tmp_path / "w.pth"
    existing.write_bytes(b"")
    for ok in (None, "random", str(existing)):
        check_files(Cfg(weights=ok))
    with pytest.raises(UsageError, match="weights='nope': no such file .allowed: 'random' or "
                                         "the path of a weights file."):
        check_files(Cfg(weights="nope"))


def test_require():
    require(True, "never")
    with pytest.raises(UsageError, match="^crop=300 exceeds"):
        require(False, "crop=300 exceeds")
