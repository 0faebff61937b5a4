"""``bench perf`` on tiny settings: one code path for MKD and the baselines, options checked,
the JSON written with its environment."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from bench.core.errors import UsageError
from bench.methods import METHODS
from bench.methods.base import Method, MethodConfig, MethodSpec, PerfProfile, Scores
from bench.perf.compare import compare_speed, throughputs
from bench.perf.measure import (
    PerfOptions,
    check_options,
    measure_size,
    perf,
    resolve_methods,
    settings_for,
    synthetic_task,
)
from bench.perf.summary import summary_rows
from tests.conftest import invoke

CPU = torch.device("cpu")
TINY = {"sizes": (32,), "images": 4, "epochs": 2, "loop_images": 2, "loop_size": 32,
        "device": "cpu"}


def test_perf_mkd_prints_and_writes_json(cli, results, tmp_path):
    out = tmp_path / "perf.json"
    res = invoke(cli, results, "perf", "mkd", "--sizes", "32", "--images", "4", "--epochs", "2",
                 "--loop-images", "2", "--loop-size", "32", "--threads", "1", "-o", str(out),
                 "--save")
    assert res.exit_code == 0, res.output
    assert "train+cache" in res.output and "per-image loop" in res.output
    assert "official code's per-image procedure" in res.output
    data = json.loads(out.read_text())
    r = data["methods"]["mkd"]["sizes"]["32"]
    for key in ("score_img_s", "localization_img_s", "train_speedup_cache"):
        assert r[key] > 0
    assert r["train_cache_on"]["cached_images"] == 4 and r["train_cache_off"]["cached_images"] == 0
    assert r["train_cache_on"]["basis"] == "steady epochs"
    assert set(r["peak_rss_mb"]) == {"train_cache_off", "train_cache_on", "score",
                                     "localization"}
    loop = data["methods"]["mkd"]["loop"]
    assert loop["images"] == 2 and loop["speedup"] > 0 and loop["speedup_vs_official"] > 0
    environment = data["environment"]
    assert environment["threads"] == 1 and environment["device_name"]
    assert "torch" in environment["versions"] and "git" in environment
    assert len(list((results / "perf").glob("mkd-cpu-*.json"))) == 1


def test_baselines_go_through_the_same_path():
    result = perf(["ocsvm", "cae", "padim"], PerfOptions(**TINY))
    ocsvm, cae, padim = (result["methods"][m] for m in ("ocsvm", "cae", "padim"))
    assert ocsvm["sizes"]["32"]["train"]["basis"] == "whole fit"
    assert cae["sizes"]["32"]["train"]["basis"] == "steady epochs"
    assert padim["sizes"]["32"]["train"]["basis"] == "whole fit"  # it reports position chunks
    assert ocsvm["sizes"]["32"]["localization_img_s"] is None and "loop" not in ocsvm
    for entry in (cae, padim):
        assert entry["sizes"]["32"]["localization_img_s"] > 0
        assert entry["loop"]["speedup"] > 0 and "speedup_vs_official" not in entry["loop"]
    rows = summary_rows(result)
    assert [r["method"] for r in rows] == ["ocsvm", "cae", "padim"]
    assert "train+cache" not in rows[0]  # no method here has an expert cache
    assert rows[0]["localize"] == "–"


def test_test_images_and_no_localization():
    result = perf(["mkd"], PerfOptions(**{**TINY, "loop_images": 0}, test_images=3,
                                       localize=False))
    r = result["methods"]["mkd"]["sizes"]["32"]
    assert r["images"] == 4 and r["test_images"] == 3
    assert r["localization_img_s"] is None and "localization" not in r["peak_rss_mb"]


def test_settings_run_offline_and_keep_only_known_fields():
    opts = PerfOptions(epochs=4, batch_size=8, extra={"lamda": 0.5, "n_features": 10})
    mkd = settings_for("mkd", 64, opts, expert_cache="off")
    assert mkd["expert_weights"] == "random" and mkd["epochs"] == 4 and mkd["batch_size"] == 8
    assert mkd["lamda"] == 0.5 and "n_features" not in mkd and mkd["expert_cache"] == "off"
    padim = settings_for("padim", 64, opts)
    assert padim["backbone_weights"] == "random" and padim["crop"] is None
    assert padim["n_features"] == 10 and "epochs" not in padim
    assert "expert_weights" not in settings_for("ocsvm", 32, opts)


@dataclass(frozen=True, kw_only=True)
class _ToyConfig(MethodConfig):
    mode: str = "plain"
    weights: str | None = None
    compile: bool = False


class _Toy(Method):
    """Declares two training variants, their speed-up, a flag and an offline setting."""

    Config = _ToyConfig
    config: _ToyConfig
    perf_profile = PerfProfile(
        train_variants={"train_plain": {"mode": "plain"}, "train_quick": {"mode": "quick"}},
        speedups={"train_speedup_mode": ("train_quick", "train_plain")},
        flags=frozenset({"compile"}), offline={"weights": "random"})

    def fit(self, train, ctx):
        assert self.config.weights == "random", "the offline settings were not applied"
        return self

    def fit_info(self):
        return {"quick": float(self.config.mode == "quick")}

    def score(self, test, ctx):
        return Scores(image=np.zeros(len(test)))


def test_perf_runs_a_method_as_it_declares(monkeypatch):
    monkeypatch.setitem(METHODS._items, "toy_perf", MethodSpec(
        name="toy_perf", cls=_Toy, defaults={}, summary="test only"))
    check_options(["toy_perf"], PerfOptions(compile=True), CPU)
    r = measure_size("toy_perf", 32, PerfOptions(**TINY), CPU)
    assert r["train_plain"]["quick"] == 0.0 and r["train_quick"]["quick"] == 1.0
    assert r["train_speedup_mode"] == r["train_quick"]["img_s"] / r["train_plain"]["img_s"]
    assert "train" not in r and set(r["peak_rss_mb"]) == {"train_plain", "train_quick", "score"}


def test_resolve_methods():
    assert resolve_methods(["mkd", "padim*", "mkd"]) == ["mkd", "padim", "padim_r18",
                                                         "padim_wr50"]
    assert "stfpm" in resolve_methods(["all"]) and "padim_wr50" not in resolve_methods(["all"])
    with pytest.raises(UsageError, match="no method matches"):
        resolve_methods(["nope"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"amp": True}, "ocsvm has no 'amp' option; it applies to: mkd"),
    ({"channels_last": True}, "ocsvm has no 'channels_last' option"),
    ({"compile": True}, "ocsvm has no 'compile' option; it applies to: mkd"),
    ({"extra": {"nope": 1}}, "no selected method has this field"),
    ({"sizes": (16,)}, "at least 32 px"),
])
def test_check_options_refuses(kwargs, message):
    with pytest.raises(UsageError, match=message):
        check_options(["mkd", "ocsvm"], PerfOptions(**kwargs), CPU)


def test_check_options_accepts_compile_for_mkd():
    check_options(["mkd", "mkd_single"], PerfOptions(compile=True), CPU)
    check_options(["mkd"], PerfOptions(amp=True, channels_last=True), CPU)  # they act on the CPU


def test_perf_cli_errors_are_one_line(cli, results):
    res = invoke(cli, results, "perf", "mkd", "--sizes", "16")
    assert res.exit_code == 2 and "at least 32" in res.output
    res = invoke(cli, results, "perf", "ocsvm", "--compile")
    assert res.exit_code == 2 and "no 'compile' option" in res.output
    res = invoke(cli, results, "perf", "ocsvm", "--amp")
    assert res.exit_code == 2 and "no 'amp' option" in res.output


def test_synthetic_task_has_masks_on_anomalies():
    data = synthetic_task(6, 32)
    assert data.size == (32, 32) and data.masks is not None
    assert data.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert all(data.masks[i].sum() > 0 for i in (1, 3, 5)) and data.masks[0].sum() == 0


def test_retain_freed_memory_switch(monkeypatch):
    from bench.core import environment as env

    env._glibc.cache_clear()
    env.retain_freed_memory.cache_clear()
    try:
        monkeypatch.setenv("BENCH_RETAIN_MEMORY", "0")
        assert env.retain_freed_memory() is False
        env.release_memory()  # a no-op when off
        monkeypatch.delenv("BENCH_RETAIN_MEMORY")
        env._glibc.cache_clear()
        env.retain_freed_memory.cache_clear()
        import ctypes.util
        import sys

        glibc = sys.platform.startswith("linux") and ctypes.util.find_library("c") is not None
        assert env.retain_freed_memory() is bool(glibc and env._glibc() is not None)
        env.release_memory()
    finally:
        env._glibc.cache_clear()
        env.retain_freed_memory.cache_clear()


def _result(train: float, score: float, threads: int = 2) -> dict:
    """A perf result as ``perf`` writes it, with two figures of one method and MKD's loop."""
    return {"benchmark": "perf", "device": "cpu", "device_name": "x", "threads": threads,
            "options": {"images": 16, "epochs": 3},
            "methods": {"cae": {"sizes": {"32": {"train": {"img_s": train}, "score_img_s": score,
                                                  "localization_img_s": None}}},
                        "mkd": {"sizes": {}, "loop": {"size": 128, "batched_img_s": 7.0}}}}


def test_throughputs_reads_every_figure():
    assert throughputs(_result(100.0, 50.0)) == {
        ("cae", "32", "train"): 100.0, ("cae", "32", "score"): 50.0,
        ("mkd", "128", "localization_batched"): 7.0}


def test_compare_speed_flags_only_what_slowed_beyond_the_limit():
    cmp = compare_speed(_result(100.0, 30.0), _result(100.0, 50.0), max_slowdown=0.25)
    assert not cmp.ok and [(c.figure, round(c.ratio, 2)) for c in cmp.regressions] == [
        ("score", 0.6)]
    assert cmp.changes[0].figure == "score"  # slowest first
    assert cmp.differences == [] and cmp.missing == []
    assert compare_speed(_result(80.0, 45.0), _result(100.0, 50.0), max_slowdown=0.25).ok
    other = compare_speed(_result(100.0, 50.0, threads=1), _result(100.0, 50.0))
    assert other.ok and other.differences == ["threads: 2 -> 1"]
    with pytest.raises(UsageError, match="fraction"):
        compare_speed(_result(1, 1), _result(1, 1), max_slowdown=1.5)


def test_perf_compare_fails_on_a_slowdown_and_passes_against_itself(cli, results, tmp_path):
    # Timings depend on the machine's load: the doctored baselines are 1000x slower or faster
    # than any real run, so that the verdicts below never depend on it.
    args = ("perf", "kde", "--sizes", "32", "--images", "4", "--threads", "1")
    base = tmp_path / "base.json"
    assert invoke(cli, results, *args, "-o", str(base)).exit_code == 0
    measured = json.loads(base.read_text())
    figures = measured["methods"]["kde"]["sizes"]["32"]
    slow_base = json.loads(json.dumps(measured))
    for key in ("train", "score_img_s"):
        target = slow_base["methods"]["kde"]["sizes"]["32"]
        if isinstance(target[key], dict):
            target[key]["img_s"] /= 1000
        else:
            target[key] /= 1000
    (tmp_path / "slow.json").write_text(json.dumps(slow_base))
    same = invoke(cli, results, *args, "--compare", str(tmp_path / "slow.json"))
    assert same.exit_code == 0 and "perf check: PASS" in same.output, same.output
    fast = json.loads(json.dumps(slow_base))
    fast["methods"]["kde"]["sizes"]["32"]["score_img_s"] = figures["score_img_s"] * 1000
    fast_path = tmp_path / "fast.json"
    fast_path.write_text(json.dumps(fast))
    slow = invoke(cli, results, *args, "--compare", str(fast_path))
    assert slow.exit_code == 1 and "perf check: FAIL (1 of 2" in slow.output, slow.output
    (tmp_path / "bad.json").write_text("{")
    bad = invoke(cli, results, *args, "--compare", str(tmp_path / "bad.json"))
    assert bad.exit_code == 2 and "not a readable perf result" in bad.output
