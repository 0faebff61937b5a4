import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from bench.core.errors import UsageError
from bench.report.check import Tolerances, baseline_frame, compare, read_baseline, write_baseline
from tests.conftest import invoke, run_mini_suite

SUBSET = ("--method", "ocsvm", "--dataset", "digits", "--task", "0", "--task", "3")


@pytest.fixture
def pinned(cli, results, tmp_path):
    """A small suite file, run once, with its baseline written."""
    suite = run_mini_suite(cli, results, tmp_path)
    base = tmp_path / "mini.csv"
    res = invoke(cli, results, "baseline", "update", "--suite", str(suite), "-o", str(base))
    assert res.exit_code == 0, res.output
    return suite, base


def _records(results: Path):
    return sorted((results / "runs" / "mini").glob("*.json"))


def test_clean_run_passes(cli, results, pinned):
    suite, base = pinned
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    # 2 methods x 2 tasks x 4 image metrics (AUROC, AP, F1-max, F1 at the training quantile)
    assert res.exit_code == 0 and "PASS" in res.output and "16 ok" in res.output


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


def test_a_rise_beyond_tolerance_fails_too(cli, results, pinned):
    suite, base = pinned
    path = _records(results)[0]
    rec = json.loads(path.read_text())
    rec["metrics"]["image_ap"] = min(1.0, rec["metrics"]["image_ap"]) + 0.5
    path.write_text(json.dumps(rec))
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 1 and "FAIL" in res.output and "1 improvement" in res.output
    assert "improvement beyond tolerance: accept it with `bench baseline update" in res.output
    assert "IMPROVEMENT" in res.output and "+0.5" in res.output
    ok = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base),
                "--tolerance", "image_ap=0.6")
    assert ok.exit_code == 0, ok.output


def test_constant_scores_fail_as_degenerate(cli, results, pinned):
    suite, base = pinned
    paths = _records(results)
    assert all(json.loads(p.read_text())["score_summary"]["distinct"] > 1 for p in paths)
    rec = json.loads(paths[0].read_text())
    rec["score_summary"]["distinct"] = 1  # as a detector that gives every image one score
    paths[0].write_text(json.dumps(rec))
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 1 and "1 degenerate" in res.output
    assert "DEGENERATE" in res.output and "constant image scores" in res.output


def test_a_column_at_chance_fails_as_degenerate(cli, results, pinned):
    suite, base = pinned
    for path in _records(results):
        rec = json.loads(path.read_text())
        if rec["job"]["method"] == "kde":  # both digits tasks at chance
            rec["metrics"]["image_auroc"] = 0.51 if rec["job"]["task"] == "0" else 0.49
            path.write_text(json.dumps(rec))
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base),
                 "--tolerance", "1")  # no regression: the chance column alone fails it
    assert res.exit_code == 1 and "1 degenerate" in res.output and "0 regression" in res.output
    assert "kde digits/all 2 tasks image_auroc" in res.output
    assert "within 0.5 ± 0.02 on every task" in res.output


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


def _one_error_line(res) -> str:
    """The single ``bench: error:`` line of a refused command (and no traceback)."""
    errors = [line for line in res.output.splitlines() if line.startswith("bench: error:")]
    assert len(errors) == 1, res.output
    assert "Traceback" not in res.output
    return errors[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("value", ["nan", "abc", "inf", ""])
def test_non_numeric_baseline_value_is_refused_with_its_line(cli, results, pinned, value):
    suite, base = pinned
    lines = base.read_text().splitlines()
    lines[3] = lines[3].rpartition(",")[0] + "," + value
    base.write_text("\n".join(lines) + "\n")
    before = _tree(results)
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 2
    line = _one_error_line(res)
    assert str(base) in line and "line 4" in res.output and "value" in res.output
    assert _tree(results) == before


def test_duplicate_baseline_key_is_refused_with_both_lines(cli, results, pinned):
    suite, base = pinned
    lines = base.read_text().splitlines()
    # an appended row for a pinned key must not silently replace the pinned value
    lines.append(lines[1].rpartition(",")[0] + ",0.100000")
    base.write_text("\n".join(lines) + "\n")
    before = _tree(results)
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 2, res.output
    _one_error_line(res)
    assert _tree(results) == before
    assert "duplicate" in res.output and f"lines 2, {len(lines)}" in res.output
    assert "PASS" not in res.output


def test_baseline_problems_one_line_each(tmp_path):
    base = tmp_path / "b.csv"
    base.write_text("method,overrides,dataset,task,seed,metric,value\n"
                    "m,{},d,1,0,image_auroc,nan\n"
                    "m,{},d,1,x,image_auroc,0.5\n"
                    "m,{},d,2,0,image_auroc,0.5\n"
                    "m,{},d,2,0,image_auroc,0.6\n"
                    ",{},d,3,0,image_auroc,0.6\n")
    with pytest.raises(UsageError) as info:
        read_baseline(base)
    problems = str(info.value).splitlines()[1:]
    assert len(problems) == 4, str(info.value)
    assert any("line 2" in p and "value" in p for p in problems)
    assert any("line 3" in p and "seed" in p for p in problems)
    assert any("lines 4, 5" in p and "duplicate" in p for p in problems)
    assert any("line 6" in p and "method" in p for p in problems)


def test_baseline_without_a_column_is_refused(cli, results, pinned):
    suite, base = pinned
    text = base.read_text().replace("metric,value", "metric,score")
    base.write_text(text)
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 2
    assert "value" in _one_error_line(res)


def test_unreadable_record_is_reported_once(cli, results, pinned, caplog):
    suite, base = pinned
    bad = _records(results)[0]  # a job's record: read by load, summary and plan
    bad.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 1 and "missing" in res.output, res.output
    warned = [r for r in caplog.records if bad.name in r.getMessage()]
    assert len(warned) == 1, caplog.text


def test_a_variant_in_brackets_is_printed_as_written(cli, results, tmp_path):
    """rich must not read ``ocsvm[nu=0.3]`` as a markup tag and drop the variant."""
    suite = tmp_path / "variant.yaml"
    suite.write_text("name: variant\nseeds: [0]\ndatasets: {digits: ['3']}\n"
                     "methods: {ocsvm: {nu: 0.3}}\n")
    assert invoke(cli, results, "run", "--suite", str(suite), "--all").exit_code == 0
    base = tmp_path / "variant.csv"
    assert invoke(cli, results, "baseline", "update", "--suite", str(suite),
                  "-o", str(base)).exit_code == 0
    (path,) = (results / "runs" / "variant").glob("*.json")
    rec = json.loads(path.read_text())
    rec["metrics"]["image_auroc"] -= 0.05
    path.write_text(json.dumps(rec))
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 1 and "ocsvm[nu=0.3]" in res.output, res.output


def test_degenerate_band_and_minimum_tasks():
    from bench.report.degenerate import CHANCE_BAND, at_chance

    assert at_chance(pd.Series([0.5, 0.5 + CHANCE_BAND, 0.5 - CHANCE_BAND]))
    assert not at_chance(pd.Series([0.5, 0.53]))
    assert not at_chance(pd.Series([0.5]))  # one task is no evidence


def test_tables_mark_degenerate_cells(cli, results, pinned):
    suite, _ = pinned
    for path in _records(results):
        rec = json.loads(path.read_text())
        if rec["job"]["method"] == "kde":
            rec["metrics"]["image_auroc"] = 0.5
            path.write_text(json.dumps(rec))
        elif rec["job"]["task"] == "3":
            rec["score_summary"]["distinct"] = 1
            path.write_text(json.dumps(rec))
    res = invoke(cli, results, "table", "--suite", str(suite))
    assert res.exit_code == 0, res.output
    rows = {line.split("|")[1].strip(): line for line in res.output.splitlines()
            if line.startswith("|")}
    assert rows["0"].count("‡") == 1 and rows["3"].count("‡") == 2
    assert rows["Mean"].count("‡") == 1
    assert "constant image scores" in res.output and "ocsvm on 3" in res.output
    assert "image_auroc within 0.5 ± 0.02 on every task" in res.output
    latex = invoke(cli, results, "table", "--suite", str(suite), "--format", "latex")
    assert r"$^\ddagger$" in latex.output and "‡" not in latex.output
