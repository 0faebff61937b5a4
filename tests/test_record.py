"""The typed record: built in one place, checked on read, older records still load."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest

from bench.records.key import Job
from bench.records.record import HOST_FIELDS, SCHEMA_VERSION, Record, RecordError
from bench.records.store import Store

#: a record written by main at 764a8e8 (before the typed record), by
#: `bench run --suite demo --method ocsvm --dataset textures --task brick`
OLD = Path(__file__).parent / "fixtures" / "record_main_764a8e8.json"


def test_a_record_written_before_the_typed_record_loads_and_round_trips(tmp_path):
    data = json.loads(OLD.read_text())
    rec = Record.from_json(data)
    assert rec.ok and rec.job.method == "ocsvm" and rec.job.task == "brick"
    assert rec.metrics["image_auroc"] == data["metrics"]["image_auroc"]
    assert rec.host["cpu_cores"] == data["cpu_cores"] and rec.checkpoint_policy == "final"
    assert rec.to_json() == {**data, "schema_version": 2}  # nothing lost, nothing added
    path = tmp_path / "runs" / "demo" / f"{rec.id}.json"
    path.parent.mkdir(parents=True)
    path.write_text(OLD.read_text())
    assert Store(tmp_path).load("demo")["value"].notna().any()


def test_a_version_1_record_s_pixel_metrics_are_read_as_model_resolution_ones():
    data = json.loads(OLD.read_text())
    data["metrics"].update(pixel_auroc=0.91, pixel_aupro=0.7, pixel_auroc_mkd=0.95)
    data["pixel_protocol"] = {"resolution": 128, "includes_normal_images": True}
    rec = Record.from_json(data)
    assert rec.metrics["pixel_auroc_model_res"] == 0.91
    assert rec.metrics["pixel_aupro_model_res"] == 0.7 and rec.metrics["pixel_auroc_mkd"] == 0.95
    assert "pixel_auroc" not in rec.metrics and "pixel_aupro" not in rec.metrics
    assert rec.pixel_protocol == {"resolution": None, "model_resolution": 128,
                                  "includes_normal_images": True}
    assert Record.from_json(rec.to_json()) == rec  # version 2 reads back as it is


def test_new_and_finish_build_the_record(tmp_path):
    job = Job.make("s", "ocsvm", "digits", "1", 0, {"nu": 0.2})
    rec = Record.new(job, created="2026-11-29T00:00:00+0000", versions={"bench": "0.1.0"},
                     git="abc", runner={"backend": "local"})
    assert rec.status == "failed" and rec.id == job.id
    done = rec.finish(timing_s={"total": 1.23456}, peak_rss_mb=100.04, peak_gpu_mb=None,
                      status="ok", metrics={"image_auroc": 0.9, "pixel_auroc": float("nan")},
                      host={"device": "cpu", "threads": 2})
    data = done.to_json()
    assert data["schema_version"] == SCHEMA_VERSION and data["job"]["overrides"] == {"nu": 0.2}
    assert data["metrics"] == {"image_auroc": 0.9, "pixel_auroc": None}
    assert data["timing_s"] == {"total": 1.2346} and data["peak_rss_mb"] == 100.0
    assert data["device"] == "cpu" and "host" not in data and "config" not in data
    assert Record.from_json(data) == done
    summary = done.summary()
    assert summary.ok and summary.variant == "nu=0.2" and summary.total_s == 1.2346


@pytest.mark.parametrize(("change", "reason"), [
    (lambda d: d.pop("job"), "'job' is not an object"),
    (lambda d: d["job"].pop("method"), "lacks method"),
    (lambda d: d.update(job="x"), "'job' is not an object"),
    (lambda d: d.update(status="done"), "unknown status"),
    (lambda d: d["metrics"].update(image_auroc="abc"), "non-numeric metric"),
    (lambda d: d.update(metrics=[1]), "'metrics' is not an object"),
    (lambda d: d.update(history={"epoch": 1}), "'history' is not a list"),
    (lambda d: d.update(schema_version=99), "schema version 99"),
    (lambda d: d.update(id="0" * 16), "is not its job's"),
])
def test_records_that_break_the_schema_are_refused_with_the_reason(change, reason):
    data = json.loads(OLD.read_text())
    change(data)
    with pytest.raises(RecordError, match=reason):
        Record.from_json(data)


def test_broken_record_files_are_skipped_with_a_warning(tmp_path, caplog):
    good = Record.from_json(json.loads(OLD.read_text()))
    store = Store(tmp_path)
    store.write(good)
    folder = store.suite_dir("demo")
    (folder / "bytes.json").write_bytes(b"\xff\xfe\x00x")  # not UTF-8
    (folder / "schema.json").write_text(json.dumps({**good.to_json(), "job": "x"}))
    with caplog.at_level(logging.WARNING):
        assert [r.id for r in store.records("demo")] == [good.id]
        assert len(store.load("demo")) == len(good.metrics)
    assert "bytes.json" in caplog.text and "schema.json" in caplog.text


def _documented_fields() -> list[str]:
    """The field names of the first table of results/README.md (its first column)."""
    text = (Path(__file__).resolve().parents[1] / "results" / "README.md").read_text("utf-8")
    table = text.split("| field | type | meaning |", 1)[1].split("\n\n", 1)[0]
    names: list[str] = []
    for line in table.splitlines()[2:]:
        first = line.split("|")[1]
        names += re.findall(r"`([a-z_]+)`", first)
    return names


def test_results_readme_documents_exactly_the_record_fields():
    documented = _documented_fields()
    stored = {"schema_version", "id", "job", *HOST_FIELDS,
              *(f.name for f in dataclasses.fields(Record) if f.name not in ("job", "host"))}
    assert len(documented) == len(set(documented)), "a field is documented twice"
    assert sorted(stored - set(documented)) == [], "fields the README does not document"
    assert sorted(set(documented) - stored) == [], "documented fields the record lacks"
    text = (Path(__file__).resolve().parents[1] / "results" / "README.md").read_text("utf-8")
    assert f"| `schema_version` | int | {SCHEMA_VERSION} |" in text
    assert f"**Schema version {SCHEMA_VERSION}.**" in text
