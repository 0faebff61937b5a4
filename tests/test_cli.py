import json

import pytest

from tests.conftest import invoke


def test_list_commands(cli, results):
    for what, needle in (("methods", "ocsvm"), ("datasets", "textures"), ("suites", "demo")):
        res = invoke(cli, results, "list", what)
        assert res.exit_code == 0 and needle in res.output


def test_run_table_resume_and_status(cli, results):
    args = ("run", "--suite", "demo", "--method", "ocsvm", "--dataset", "digits",
            "--task", "1", "--task", "7")
    res = invoke(cli, results, *args)
    assert res.exit_code == 0, res.output
    assert "2 run now" in res.output
    recs = list((results / "runs" / "demo").glob("*.json"))
    assert len(recs) == 2
    rec = json.loads(recs[0].read_text())
    assert rec["status"] == "ok" and rec["schema_version"] == 2
    assert {"versions", "git", "config", "timing_s", "peak_rss_mb", "device"} <= set(rec)
    again = invoke(cli, results, *args)
    assert again.exit_code == 0 and "0 run now, 2 already done" in again.output
    table = invoke(cli, results, "table", "--suite", "demo", "--format", "markdown")
    assert table.exit_code == 0 and "| Mean" in table.output and "ocsvm" in table.output
    latex = invoke(cli, results, "table", "--format", "latex")
    assert "\\toprule" in latex.output and "\\midrule\nMean" in latex.output
    csv = invoke(cli, results, "table", "--format", "csv")
    assert csv.output.startswith("dataset,metric,task,method,mean,std,n_seeds")
    status = invoke(cli, results, "status", "--suite", "demo")
    assert status.exit_code == 0 and "demo" in status.output


@pytest.mark.parametrize("args,code,needle", [
    (("run", "--suite", "demo", "--method", "nope"), 2, "unknown method 'nope'"),
    (("run", "--suite", "nosuch", "--all"), 2, "unknown suite 'nosuch'"),
    (("run", "--suite", "demo", "--dataset", "mnist"), 2, "unknown dataset 'mnist'"),
    (("run", "--suite", "demo", "--dataset", "digits", "--task", "x"), 2, "unknown task 'x'"),
    (("run", "--suite", "demo", "--all", "--set", "epochz=1"), 2, "valid fields"),
    (("run", "--suite", "demo", "--all", "--set", "nu=abc"), 2, "nu: expected a number"),
    (("run", "--suite", "demo"), 2, "nothing selected"),
    (("table", "--suite", "demo"), 2, "no records"),
])
def test_user_errors_are_one_line(cli, results, args, code, needle):
    res = invoke(cli, results, *args)
    assert res.exit_code == code
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("bench: error:") and needle in lines[0]


def test_failed_and_nan_jobs_are_recorded_and_others_finish(cli, results, monkeypatch):
    import numpy as np

    from bench.methods.base import Scores
    from bench.methods.classic import KDEDetector, OneClassSVMDetector

    def nan_score(self, test, ctx):
        return Scores(image=np.full(len(test), np.nan))

    def boom(self, train, ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(KDEDetector, "score", nan_score)
    monkeypatch.setattr(OneClassSVMDetector, "fit", boom)
    select = ("run", "--suite", "demo", "--method", "ocsvm", "--method", "kde",
              "--dataset", "digits", "--task", "2", "--task", "4")
    res = invoke(cli, results, *select)
    assert res.exit_code == 1
    assert "4 job(s) failed" in res.output and "boom" in res.output and "NaN" in res.output
    recs = [json.loads(p.read_text()) for p in (results / "runs" / "demo").glob("*.json")]
    assert len(recs) == 4 and all(r["status"] == "failed" for r in recs)
    assert all(r["error"] and r["traceback"] for r in recs)
    monkeypatch.undo()
    # failed records are kept and reported until retried
    again = invoke(cli, results, *select)
    assert again.exit_code == 1 and "--retry-failed" in again.output
    fixed = invoke(cli, results, *select, "--retry-failed")
    assert fixed.exit_code == 0 and "4 run now" in fixed.output


def test_dry_run_lists_jobs(cli, results):
    res = invoke(cli, results, "run", "--suite", "ci", "--all", "--dry-run")
    assert res.exit_code == 0 and "job(s) in suite ci" in res.output
    assert not (results / "runs").exists()
