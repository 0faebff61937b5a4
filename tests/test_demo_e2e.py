"""The demo suite end to end on a subset, through the real CLI, in parallel workers."""

import json

from tests.conftest import invoke


def test_demo_subset_end_to_end(cli, results):
    res = invoke(cli, results, "run", "--suite", "demo", "--task", "0", "--task", "brick",
                 "--jobs", "2")
    assert res.exit_code == 0, res.output
    recs = [json.loads(p.read_text()) for p in (results / "runs" / "demo").glob("*.json")]
    methods = {r["job"]["method"] for r in recs}
    assert {r["job"]["task"] for r in recs} == {"0", "brick"}
    assert all(r["status"] == "ok" for r in recs)
    for r in recs:
        assert 0.0 <= r["metrics"]["image_auroc"] <= 1.0
        if r["job"]["dataset"] == "digits":
            assert r["metrics"]["image_auroc"] > 0.6  # every method beats chance on digit 0
    table = invoke(cli, results, "table", "--suite", "demo", "--format", "markdown")
    for m in methods:
        assert m in table.output
