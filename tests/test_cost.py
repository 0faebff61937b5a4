"""`bench table --cost`: fit and score time, peak memory per method × dataset, from the records,
with the hardware in the caption; in `bench report` too."""

from __future__ import annotations

import io
import json

import pandas as pd

from bench.records.store import Store
from bench.report.cost import cost_tables
from tests.conftest import invoke, run_mini_suite


def test_cost_table_from_the_records(cli, results, tmp_path):
    run_mini_suite(cli, results, tmp_path)
    paths = sorted((results / "runs" / "mini").glob("*.json"))
    recs = [json.loads(p.read_text()) for p in paths]
    kde = [r for r in recs if r["job"]["method"] == "kde"]
    for r, path in zip(recs, paths, strict=True):  # known numbers, to check the arithmetic
        if r["job"]["method"] == "kde":
            r["timing_s"]["fit"], r["timing_s"]["score"] = 2.0, 0.5 * r["data"]["test"] / 1000
            r["peak_rss_mb"] = 300.0 if r["job"]["task"] == "0" else 400.0
            path.write_text(json.dumps(r))
    [table] = cost_tables(Store(results).summary("mini"))
    assert table.title == "Cost — digits" and list(table.cells.index) == ["kde", "ocsvm"]
    assert table.cells.loc["kde"].tolist() == ["2", "2.0", "0.50", "400", "–"]
    assert recs[0]["cpu_model"] in table.caption and "torch thread(s) per job" in table.caption
    assert len(kde) == 2
    res = invoke(cli, results, "table", "--suite", "mini", "--cost")
    assert res.exit_code == 0, res.output
    assert "### Cost — digits" in res.output and "score ms/image" in res.output
    assert "hardware:" in res.output
    csv = invoke(cli, results, "table", "--suite", "mini", "--cost", "--format", "csv")
    frame = pd.read_csv(io.StringIO(csv.output))
    row = frame[frame["method"] == "kde"].iloc[0]
    assert row["fit_s"] == 2.0 and row["peak_rss_mb"] == 400.0 and row["jobs"] == 2
    bad = invoke(cli, results, "table", "--suite", "mini", "--cost", "--ranks")
    assert bad.exit_code == 2 and "--cost tabulates" in bad.output
    report = invoke(cli, results, "report", "--suite", "mini", "-o", str(tmp_path / "r.html"))
    assert report.exit_code == 0, report.output
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Cost</h2>" in page or ">Cost<" in page
    assert "Cost — digits" in page
