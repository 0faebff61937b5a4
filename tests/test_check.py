import json
from pathlib import Path

import pandas as pd
import pytest

from bench.core.errors import UsageError
from bench.report.check import Tolerances, baseline_frame, compare, read_baseline, write_baseline
from tests.conftest import invoke

SUBSET = ("--method", "ocsvm", "--dataset", "digits", "--task", "0", "--task", "3")


@pytest.fixture
def pinned(cli, results, tmp_path):
    """A small suite file, run once, with its baseline written."""
    suite = tmp_path / "mini.yaml"
    suite.write_text("name: mini\nseeds: [0]\ndatasets: {digits: ['0', '3']}\n"
                     "methods: {ocsvm: {}, kde: {}}\n")
    assert invoke(cli, results, "run", "--suite", str(suite), "--all").exit_code == 0
    base = tmp_path / "mini.csv"
    res = invoke(cli, results, "baseline", "update", "--suite", str(suite), "-o", str(base))
    assert res.exit_code == 0, res.output
    return suite, base


def _records(results: Path):
    return sorted((results / "runs" / "mini").glob("*.json"))


def test_clean_run_passes(cli, results, pinned):
    suite, base = pinned
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 0 and "PASS" in res.output and "8 ok" in res.output


def test_lowered_score_fails_and_is_named(cli, results, pinned):
    suite, base = pinned
    path = _records(results)[0]
    rec = json.loads(path.read_text())
    rec["metrics"]["image_auroc"] -= 0.05
    path.write_text(json.dumps(rec))
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 1 and "FAIL" in res.output and "1 regression" in res.output
    job = rec["job"]
    assert f"{job['method']}" in res.output and "image_auroc" in res.output
    assert "-0.0500" in res.output
    # a looser tolerance for that metric lets it pass
    ok = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base),
                "--tolerance", "image_auroc=0.06")
    assert ok.exit_code == 0


def test_missing_and_failed_records_fail(cli, results, pinned):
    suite, base = pinned
    paths = _records(results)
    paths[0].unlink()
    rec = json.loads(paths[1].read_text())
    rec["status"], rec["error"] = "failed", "RuntimeError: boom"
    paths[1].write_text(json.dumps(rec))
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 1
    assert "missing" in res.output and "failed" in res.output and "boom" in res.output


def test_improvement_reported_separately(cli, results, pinned):
    suite, base = pinned
    path = _records(results)[0]
    rec = json.loads(path.read_text())
    rec["metrics"]["image_ap"] = min(1.0, rec["metrics"]["image_ap"]) + 0.5
    path.write_text(json.dumps(rec))
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 0 and "improvements" in res.output and "1 improvement" in res.output


def test_baseline_round_trips_unchanged(cli, results, pinned, tmp_path):
    suite, base = pinned
    text = base.read_text()
    again = tmp_path / "again.csv"
    invoke(cli, results, "baseline", "update", "--suite", str(suite), "-o", str(again))
    assert again.read_text() == text
    assert write_baseline(read_baseline(base)) == text
    lines = text.splitlines()
    assert lines[0] == "method,overrides,dataset,task,seed,metric,value"
    assert lines[1:] == sorted(lines[1:]) or len(lines) > 1


def test_baseline_update_refuses_incomplete_suite(cli, results, tmp_path):
    suite = tmp_path / "mini.yaml"
    suite.write_text("name: mini\ndatasets: {digits: ['1']}\nmethods: {ocsvm: {}}\n")
    res = invoke(cli, results, "baseline", "update", "--suite", str(suite), "-o",
                 str(tmp_path / "b.csv"))
    assert res.exit_code == 2 and "without a record" in res.output


def test_compare_pure():
    cols = ["method", "overrides", "dataset", "task", "seed", "metric", "value"]
    base = pd.DataFrame([["m", "{}", "d", "1", 0, "image_auroc", 0.9],
                         ["m", "{}", "d", "2", 0, "image_auroc", 0.8]], columns=cols)
    cur = pd.DataFrame([["m", "{}", "d", "1", 0, "image_auroc", 0.85],
                        ["m", "{}", "d", "3", 0, "image_auroc", 0.7]], columns=cols)
    out = compare(cur, base, Tolerances(0.01))
    assert list(out["status"]) == ["missing", "regression", "new"]
    assert out.loc[1, "delta"] == pytest.approx(-0.05)
    assert Tolerances.parse(["0.02", "pixel_aupro=0.05"])("pixel_aupro") == 0.05
    with pytest.raises(UsageError):
        Tolerances.parse(["x=abc"])
    assert baseline_frame(pd.DataFrame(columns=[*cols, "status"])).empty
