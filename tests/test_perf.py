"""``bench perf mkd`` on a tiny setting: every figure is there and the JSON is written."""

import json

from bench.perf import synthetic_task
from tests.conftest import invoke


def test_perf_mkd_prints_and_writes_json(cli, results, tmp_path):
    out = tmp_path / "perf.json"
    res = invoke(cli, results, "perf", "mkd", "--sizes", "32", "--images", "4", "--epochs", "2",
                 "--loop-images", "2", "--loop-size", "32", "--threads", "1", "-o", str(out),
                 "--save")
    assert res.exit_code == 0, res.output
    assert "train+cache" in res.output and "per-image loop" in res.output
    data = json.loads(out.read_text())
    r = data["sizes"]["32"]
    for key in ("score_img_s", "localization_img_s", "train_speedup_cache"):
        assert r[key] > 0
    assert r["train_cache_on"]["cached_images"] == 4 and r["train_cache_off"]["cached_images"] == 0
    assert data["loop"]["images"] == 2 and data["loop"]["speedup"] > 0
    assert len(list((results / "perf").glob("mkd-cpu-*.json"))) == 1


def test_perf_rejects_bad_sizes(cli, results):
    res = invoke(cli, results, "perf", "mkd", "--sizes", "16")
    assert res.exit_code == 2 and "at least 32" in res.output


def test_synthetic_task_has_masks_on_anomalies():
    data = synthetic_task(6, 32)
    assert data.size == (32, 32) and data.masks is not None
    assert data.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert all(data.masks[i].sum() > 0 for i in (1, 3, 5)) and data.masks[0].sum() == 0
