"""Bad input, tried as a user (or an attacker) would: one line, a non-zero exit, nothing lost.

Every case goes through the CLI and must end in exactly one line starting ``bench: error:``, a
non-zero exit code, no traceback, and a results folder whose files are byte-identical before and
after. Damaged records are the exception that is not an error: they are reported (once, by path)
and skipped, and ``bench run`` moves them aside before it reruns their job.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from bench.records import files
from bench.records.store import Store
from tests.conftest import invoke

ONE_JOB = ("run", "--suite", "demo", "--method", "ocsvm", "--dataset", "digits", "--task", "3")


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


def assert_one_line_error(result, before: dict[str, bytes], root: Path, code: int | None = None,
                          match: str = "") -> str:
    out = result.output
    errors = [line for line in out.splitlines() if line.startswith("bench: error:")]
    assert result.exit_code != 0 and len(errors) == 1, out
    assert "Traceback" not in out, out
    if code is not None:
        assert result.exit_code == code, out
    assert match in errors[0], errors[0]
    assert snapshot(root) == before, "the results folder changed"
    return errors[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A results folder holding one finished job (made once; tests copy it)."""
    from click.testing import CliRunner

    root = tmp_path_factory.mktemp("finished") / "results"
    assert invoke(CliRunner(), root, *ONE_JOB).exit_code == 0
    return root


@pytest.fixture
def one_record(cli, results) -> Path:
    """A results folder holding one finished job; returns its record's path."""
    assert invoke(cli, results, *ONE_JOB).exit_code == 0
    (path,) = (results / "runs" / "demo").glob("*.json")
    return path


# ------------------------------------------------------------------ 1, 2: damaged records


def _retyped(**fields: object):
    """A damage: the record's own JSON with some fields of the wrong type or size."""
    def damage(data: dict) -> bytes:
        for dotted, value in fields.items():
            *parents, last = dotted.split("__")
            target = data
            for name in parents:
                target = target[name]
            target[last] = value
        return json.dumps(data).encode()
    return damage


@pytest.mark.parametrize("damage", [
    b"\xff\xfe\x00x",                                      # not UTF-8
    b'{"schema_version": 1, "job": "x"}',                  # job is not an object
    b'{"schema_version": 1, "job": {"suite": "demo"}}',    # job without method
    # issue 25 item 8: deeply nested (a RecursionError), huge, fields of the wrong type
    b'{"schema_version": 2, "job": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    b'{"schema_version": 2, "pad": "' + b"x" * (17 * 2**20) + b'"}',
    _retyped(metrics__image_auroc=10**400),
    _retyped(error=["a", "list"]),
    _retyped(pixel_protocol="a text"),
    _retyped(timing_s__total="abc"),
    _retyped(config=[1, 2]),
    _retyped(history=[{"epoch": 1, "image_auroc": "high"}]),
    _retyped(job__method=["ocsvm"]),
    _retyped(job__seed=True),
    _retyped(peak_rss_mb="lots"),
], ids=["not-utf8", "job-text", "job-no-method", "nested", "huge", "huge-int-metric",
        "error-list", "protocol-text", "timing-text", "config-list", "history-text",
        "method-list", "seed-bool", "memory-text"])
def test_damaged_records_are_reported_skipped_and_moved_aside_before_a_rerun(
        cli, results, one_record, damage, caplog):
    if callable(damage):
        damage = damage(json.loads(one_record.read_text()))
    one_record.write_bytes(damage)
    for args in (("table", "--suite", "demo"), ("status", "--suite", "demo"),
                 ("plot", "bars", "--suite", "demo"), ("report", "--suite", "demo"),
                 ("check", "--suite", "demo", "--baseline", str(_baseline(results.parent,
                                                                          "0.9")))):
        res = invoke(cli, results, *args)
        assert "Traceback" not in res.output
        assert res.exit_code in (0, 1, 2), res.output  # 2: nothing left; 1: check fails
    assert caplog.text.count(str(one_record)) == 1, caplog.text  # reported once
    caplog.clear()
    again = invoke(cli, results, *ONE_JOB)
    assert again.exit_code == 0, again.output
    aside = list(one_record.parent.glob(f"{one_record.name}.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damage  # kept, byte for byte
    assert Store(results).records("demo")[0].ok  # and the job ran again
    assert f"{one_record}" in caplog.text


def test_bench_table_survives_a_non_numeric_metric(cli, results, one_record):
    data = json.loads(one_record.read_text())
    data["metrics"]["image_auroc"] = "abc"
    one_record.write_text(json.dumps(data))
    other = one_record.with_name("0" * 16 + ".json")
    other.write_text(json.dumps({**data, "job": "x"}))
    res = invoke(cli, results, "table", "--suite", "demo")
    assert "Traceback" not in res.output and res.exit_code in (0, 2)


# ------------------------------------------------------------------ 3: suite names


@pytest.mark.parametrize("name", ["../../../escaped_suite", "/tmp/absolute_suite", "a/b", ".."])
def test_a_suite_name_that_is_a_path_is_refused(cli, results, tmp_path, name):
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: {json.dumps(name)}\ndatasets: {{digits: ['3']}}\n"
                     "methods: {ocsvm: {}}\n")
    before = snapshot(tmp_path)
    res = invoke(cli, results, "run", "--suite", str(suite), "--all")
    assert_one_line_error(res, before, tmp_path, code=2, match="not a plain name")
    assert not Path("/tmp/absolute_suite").exists()


# ------------------------------------------------------------ 4: results that cannot be written


def test_a_results_folder_that_cannot_be_written_stops_before_any_job(cli, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "runs").write_text("a file where the records' folder should be")
    before = snapshot(tmp_path)
    res = invoke(cli, results, *ONE_JOB)
    assert_one_line_error(res, before, tmp_path, code=1, match="cannot write records")


def test_a_results_path_that_is_a_file_is_refused_in_one_line(cli, tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    before = snapshot(tmp_path)
    res = invoke(cli, blocker, *ONE_JOB)
    assert_one_line_error(res, before, tmp_path, code=2, match="is a file")


def test_a_write_error_mid_run_ends_the_run_in_one_line_and_releases_the_claim(
        cli, results, monkeypatch):
    def full_disk(path, write):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("bench.records.store.atomic_write", full_disk)
    res = invoke(cli, results, *ONE_JOB)
    line = assert_one_line_error(res, snapshot(results), results, code=1,
                                 match="cannot write the record")
    assert "No space left on device" in line
    assert not list((results / "runs" / "demo").glob("*.claim"))
    assert not list((results / "runs" / "demo").glob("*.json"))


def test_table_output_into_a_folder_that_cannot_be_written(cli, results, one_record, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    before = snapshot(results)
    res = invoke(cli, results, "table", "--suite", "demo", "-o", str(blocker / "t.md"))
    assert_one_line_error(res, before, results, code=1, match=str(blocker))


# ------------------------------------------------------------------ 7: file modes


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_records_artifacts_and_claims_honour_the_umask(cli, results, umask):
    old = os.umask(umask)
    try:
        assert files.current_umask() == umask
        assert invoke(cli, results, *ONE_JOB).exit_code == 0
        from bench.run.claims import Claims
        from bench.run.jobs import Job

        claim = Claims(Store(results)).claim(Job.make("demo", "ocsvm", "digits", "4", 0))
        assert claim is not None
        written = [p for p in (results / "runs").rglob("*") if p.is_file()]
        assert {p.suffix for p in written} >= {".json", ".npz", ".claim"}
        for p in written:
            assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p
        Claims(Store(results)).release(claim)
    finally:
        os.umask(old)


# ------------------------------------------------------------------ the whole list, one table

BASELINE_HEAD = "method,overrides,dataset,task,seed,metric,value\n"
BASELINE_ROW = "ocsvm,{},digits,3,0,image_auroc,%s\n"


def _suite(tmp: Path, text: str) -> str:
    path = tmp / "suite.yaml"
    path.write_text(text)
    return str(path)


def _baseline(tmp: Path, *values: str) -> str:
    path = tmp / "baseline.csv"
    path.write_text(BASELINE_HEAD + "".join(BASELINE_ROW % v for v in values))
    return str(path)


def _zip_bomb(tmp: Path) -> str:
    import zipfile

    path = tmp / "head-ct-hemorrhage.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (20 * 2**20))  # 20 MiB of zeros, ~20 KiB packed
    return str(path)


def _not_plain_weights(tmp: Path) -> str:
    import torch

    path = tmp / "expert.pth"
    torch.save({"model": _Payload()}, path)
    return str(path)


class _Payload:
    """Not a tensor: a weights-only loader refuses to unpickle it."""


DEMO_JOB = ["run", "--suite", "demo", "--dataset", "digits", "--task", "3"]

#: (issue item, what, CLI arguments (``{tmp}`` helpers applied), exit code, words of the line)
CASES = [
    ("3", "suite name with ..", lambda t: ["run", "--suite", _suite(
        t, "name: ../x\ndatasets: {digits: ['3']}\nmethods: {ocsvm: {}}\n"), "--all"],
     2, "not a plain name"),
    ("3", "absolute suite name", lambda t: ["run", "--suite", _suite(
        t, "name: /tmp/x\ndatasets: {digits: ['3']}\nmethods: {ocsvm: {}}\n"), "--all"],
     2, "not a plain name"),
    ("5", "baseline value nan", lambda t: ["check", "--suite", "ci", "--baseline",
                                           _baseline(t, "nan")], 2, "baseline"),
    ("5", "baseline value abc", lambda t: ["check", "--suite", "ci", "--baseline",
                                           _baseline(t, "abc")], 2, "baseline"),
    ("5", "baseline duplicate key", lambda t: ["check", "--suite", "ci", "--baseline",
                                               _baseline(t, "0.9422", "0.99")], 2, "baseline"),
    ("6", "nu out of range", lambda t: [*DEMO_JOB, "--method", "ocsvm", "--set", "nu=2"],
     2, "nu"),
    ("6", "gamma not a number", lambda t: [*DEMO_JOB, "--method", "ocsvm", "--set",
                                           "gamma=abc"], 2, "gamma"),
    ("6", "missing expert weights file", lambda t: [*DEMO_JOB, "--method", "mkd", "--set",
                                                    f"expert_weights={t}/none.pth"],
     2, "expert_weights"),
    ("6", "weights file that is not a plain state dict", lambda t: [
        *DEMO_JOB, "--method", "mkd", "--set", f"expert_weights={_not_plain_weights(t)}"],
     1, "not a plain state dict"),
    ("6", "empty folder dataset", lambda t: ["run", "--method", "padim", "--dataset",
                                             f"folder:{(t / 'empty').as_posix()}",
                                             "--suite", _suite(t, "name: mine\ndatasets: "
                                             f"{{'folder:{t}/empty': all}}\n"
                                             "methods: {padim: {}}\n")], 1, "empty"),
    ("6", "suite without methods", lambda t: ["run", "--suite", _suite(
        t, "name: empty\ndatasets: {digits: all}\nmethods: {}\n"), "--all"], 2, "method"),
    ("9", "download address without a file name", lambda t: [
        "data", "fetch", "mvtec", "--accept-license", "--url", "http://127.0.0.1:9/a/.."],
     2, "file name"),
    ("9", "compression bomb", lambda t: ["data", "fetch", "headct", "--archive", _zip_bomb(t)],
     1, "ratio"),
]


# ------------------------------------------------------------------ issue 25, the same table

SUITE_OK = "datasets: {digits: ['3']}\nmethods: {ocsvm: {}}\n"
#: nine levels of nine aliases (a "billion laughs"): 342 bytes for 9**9 strings
ALIASES = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
ONE_VALUE_BOMB = "[&a [1,1,1,1,1,1,1,1,1], " + ", ".join(
    f"&{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)) + "]"
RUN = [*DEMO_JOB, "--method", "ocsvm"]


def _suite_with(t: Path, text: str) -> list[str]:
    return ["run", "--suite", _suite(t, text), "--all"]


def _non_utf8_suite(t: Path) -> list[str]:
    path = t / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1") + SUITE_OK.encode())
    return ["run", "--suite", str(path), "--all"]


CASES += [
    # item 1: nan and inf never pass a number option (one shared click type), nor --tolerance
    ("25.1", "max-ratio nan lets a bomb in", lambda t: [
        "data", "fetch", "headct", "--archive", _zip_bomb(t), "--max-ratio", "nan"], 2,
     "--max-ratio"),
    ("25.1", "max-extract-gib nan", lambda t: [
        "data", "fetch", "headct", "--archive", _zip_bomb(t), "--max-extract-gib", "nan"], 2,
     "--max-extract-gib"),
    ("25.1", "max-extract-gib inf", lambda t: [
        "data", "fetch", "headct", "--archive", _zip_bomb(t), "--max-extract-gib", "inf"], 2,
     "--max-extract-gib"),
    ("25.1", "tolerance nan", lambda t: ["check", "--suite", "ci", "--tolerance", "nan"], 2,
     "--tolerance"),
    ("25.1", "tolerance inf", lambda t: ["check", "--suite", "ci", "--tolerance", "inf"], 2,
     "--tolerance"),
    ("25.1", "per-metric tolerance nan", lambda t: [
        "check", "--suite", "ci", "--tolerance", "image_auroc=nan"], 2, "--tolerance"),
    ("25.1", "negative tolerance", lambda t: ["check", "--suite", "ci", "--tolerance", "-1"],
     2, "--tolerance"),
    ("25.1", "claim-timeout nan", lambda t: [*RUN, "--claim-timeout", "nan"], 2,
     "--claim-timeout"),
    ("25.1", "timeout nan", lambda t: [*RUN, "--timeout", "nan"], 2, "--timeout"),
    ("25.1", "timeout inf", lambda t: [*RUN, "--timeout", "inf"], 2, "--timeout"),
    ("25.1", "threshold-quantile nan", lambda t: [*RUN, "--threshold-quantile", "nan"], 2,
     "--threshold-quantile"),
    ("25.1", "table --ci nan", lambda t: ["table", "--ci", "nan"], 2, "--ci"),
    ("25.1", "status --claim-timeout inf", lambda t: ["status", "--claim-timeout", "inf"], 2,
     "--claim-timeout"),
    ("25.1", "perf --max-slowdown nan", lambda t: ["perf", "ocsvm", "--max-slowdown", "nan"], 2,
     "--max-slowdown"),
    ("25.1", "urls --timeout nan", lambda t: ["data", "urls", "--timeout", "nan"], 2,
     "--timeout"),
    # item 3: YAML aliases within a budget
    ("25.3", "alias bomb as the task list", lambda t: _suite_with(
        t, ALIASES + "name: bomb\ndatasets: {digits: [*i]}\nmethods: {ocsvm: {}}\n"), 2,
     "aliases"),
    ("25.3", "alias bomb as the description", lambda t: _suite_with(
        t, ALIASES + "name: bomb\ndescription: *i\n" + SUITE_OK), 2, "aliases"),
    ("25.3", "an alias inside itself", lambda t: _suite_with(
        t, "name: loop\ndatasets: &d {digits: [*d]}\nmethods: {ocsvm: {}}\n"), 2, "alias"),
    ("25.3", "alias bomb in --set", lambda t: [*RUN, "--set", f"nu={ONE_VALUE_BOMB}"], 2,
     "aliases"),
    # item 8: suite files that are not UTF-8 or break the schema
    ("25.8", "suite file not UTF-8", _non_utf8_suite, 2, "UTF-8"),
    ("25.8", "blocks: 5", lambda t: _suite_with(t, "name: b\nblocks: 5\n"), 2, "blocks"),
    ("25.8", "blocks: a mapping", lambda t: _suite_with(t, "name: b\nblocks: {x: 1}\n"), 2,
     "blocks"),
    ("25.8", "a block that is a number", lambda t: _suite_with(t, "name: b\nblocks: [5]\n"), 2,
     "blocks[0]"),
    ("25.8", "datasets: a list", lambda t: _suite_with(
        t, "name: b\ndatasets: [digits]\nmethods: {ocsvm: {}}\n"), 2, "datasets"),
    ("25.8", "methods: a text", lambda t: _suite_with(
        t, "name: b\ndatasets: {digits: all}\nmethods: ocsvm\n"), 2, "methods"),
    ("25.8", "a task that is a mapping", lambda t: _suite_with(
        t, "name: b\ndatasets: {digits: [{a: 1}]}\nmethods: {ocsvm: {}}\n"), 2, "task"),
    ("25.8", "description: a list", lambda t: _suite_with(
        t, "name: b\ndescription: [1, 2]\n" + SUITE_OK), 2, "description"),
    ("25.8", "YAML nested too deeply", lambda t: _suite_with(
        t, "name: b\ndescription: " + "[" * 20000 + "]" * 20000 + "\n" + SUITE_OK), 2,
     "nested"),
    ("25.8", "a suite that is a list", lambda t: _suite_with(t, "- a\n- b\n"), 2, "mapping"),
    ("25.8", "invalid YAML", lambda t: _suite_with(t, "name: [\n"), 2, "YAML"),
    ("25.8", "suite without a name", lambda t: _suite_with(t, SUITE_OK), 2, "name"),
    ("25.8", "a name that is a list", lambda t: _suite_with(t, "name: [1]\n" + SUITE_OK), 2,
     "name"),
    # item 10: seeds are integers in [0, 2**32), keys are given once, config floats finite
    ("25.10", "seeds: [-1]", lambda t: _suite_with(t, "name: s\nseeds: [-1]\n" + SUITE_OK),
     2, "seed"),
    ("25.10", "seeds: [1.5, 2.7]", lambda t: _suite_with(
        t, "name: s\nseeds: [1.5, 2.7]\n" + SUITE_OK), 2, "seed"),
    ("25.10", "seeds: [true]", lambda t: _suite_with(
        t, "name: s\nseeds: [true]\n" + SUITE_OK), 2, "seed"),
    ("25.10", "seed 10**29", lambda t: _suite_with(
        t, f"name: s\nseeds: [{10**29}]\n" + SUITE_OK), 2, "seed"),
    ("25.10", "seed 2**32", lambda t: _suite_with(
        t, f"name: s\nseeds: {2**32}\n" + SUITE_OK), 2, "seed"),
    ("25.10", "seeds: a text", lambda t: _suite_with(
        t, "name: s\nseeds: abc\n" + SUITE_OK), 2, "seed"),
    ("25.10", "seeds: []", lambda t: _suite_with(t, "name: s\nseeds: []\n" + SUITE_OK), 2,
     "seeds"),
    ("25.10", "--seeds=-1", lambda t: [*RUN, "--seeds=-1"], 2, "seed"),
    ("25.10", "--seeds 10**29", lambda t: [*RUN, "--seeds", str(10**29)], 2, "seed"),
    ("25.10", "--seeds 1.5", lambda t: [*RUN, "--seeds", "1.5"], 2, "seeds"),
    ("25.10", "--set gamma=.inf", lambda t: [*RUN, "--set", "gamma=.inf"], 2, "gamma"),
    ("25.10", "--set nu=.nan", lambda t: [*RUN, "--set", "nu=.nan"], 2, "nu"),
    ("25.10", "--set nu=nan", lambda t: [*RUN, "--set", "nu=nan"], 2, "nu"),
    ("25.10", "a method key given twice", lambda t: _suite_with(
        t, "name: d\ndatasets: {digits: ['3']}\nmethods:\n  ocsvm: {}\n  ocsvm: {nu: 0.5}\n"),
     2, "twice"),
    ("25.10", "a dataset key given twice", lambda t: _suite_with(
        t, "name: d\ndatasets: {digits: ['3'], digits: ['4']}\nmethods: {ocsvm: {}}\n"), 2,
     "twice"),
    ("25.10", "the name given twice", lambda t: _suite_with(
        t, "name: d\nname: e\n" + SUITE_OK), 2, "twice"),
    ("25.10", "plot --seed -1", lambda t: ["plot", "roc", "--seed", "-1"], 2, "--seed"),
    ("25.10", "check-method --seed 2**32", lambda t: [
        "check-method", "ocsvm", "--seed", str(2**32)], 2, "--seed"),
    # item 11: --url is used or refused, never ignored
    ("25.11", "--url of a torchvision set", lambda t: [
        "data", "fetch", "fashion_mnist", "--url", "http://127.0.0.1:9/f.tar.gz"], 2,
     "torchvision"),
    ("25.11", "--url of a manual set without --sha256", lambda t: [
        "data", "fetch", "mpdd", "--url", "http://127.0.0.1:9/mpdd.tar.gz"], 2, "--sha256"),
]
assert len(CASES) >= 60


@pytest.mark.parametrize(("item", "what", "args", "code", "words"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_every_bad_input_ends_in_one_line(cli, results, finished, tmp_path, item, what, args,
                                          code, words):
    (tmp_path / "empty").mkdir()
    data = tmp_path / "data"
    data.mkdir()
    argv = args(tmp_path)
    shutil.copytree(finished, results)  # a finished result to keep
    before, data_before = snapshot(results), snapshot(data)
    res = invoke(cli, results, *argv, data_root=data)
    line = assert_one_line_error(res, before, results, code=code)
    assert words.lower() in line.lower(), line
    assert snapshot(data) == data_before or item == "9"  # a refused archive leaves no files
    assert not [p for p in data.rglob("*") if p.is_file()]
