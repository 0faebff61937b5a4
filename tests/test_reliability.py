"""Issue 25: guards that a value could switch off, reading that ran code, options that were
ignored. Each test reproduced its item before the fix; the one-line table is in
``tests/test_bad_inputs.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click
import pytest

import bench.cli as bench_cli
from bench.cli._types import FiniteFloatRange
from bench.core import environment
from bench.core.errors import UsageError
from bench.methods import METHODS
from tests.conftest import invoke
from tests.datasets.fakes import fake_mvtec_category
from tests.test_plugins import (
    MYMOD,
    isolated_path,  # noqa: F401 (a fixture)
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


def test_reading_the_commit_never_rewrites_the_git_index(tmp_path):
    """Item 7: ``git status`` refreshes a stale index under ``.git/index.lock`` (a user's own
    ``git commit`` at that moment fails); the commit is read without writing anything."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "f.txt").write_text("x")
    _git(tmp_path, "add", "f.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    index = tmp_path / ".git" / "index"
    before = index.stat().st_mtime_ns, index.read_bytes()
    time.sleep(0.05)
    os.utime(tmp_path / "f.txt")  # same content, new stat: git status would refresh the index
    assert environment.commit_of(tmp_path) is not None
    assert (index.stat().st_mtime_ns, index.read_bytes()) == before


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         isolated_path: None) -> Path:  # noqa: F811
    """The current folder, where modules named ``module:Class`` are looked for."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for entry in ("", str(work)):
        while entry in sys.path:
            sys.path.remove(entry)
    return work


def test_a_plugin_that_exits_while_it_is_imported_is_one_line(cli, results, here):
    """Item 9: ``sys.exit(3)`` in a plugin module ended bench with exit 3 and no output."""
    name = f"exiting_{uuid.uuid4().hex[:8]}"
    (here / f"{name}.py").write_text("import sys\nsys.exit(3)\n", encoding="utf-8")
    res = invoke(cli, results, "run", "--method", f"{name}:Mean", "--dataset", "digits",
                 "--task", "3")
    lines = [ln for ln in res.output.splitlines() if ln.startswith("bench: error:")]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert f"cannot import {name}: SystemExit: 3" in lines[0]


# ------------------------------------------------------------------ item 1: numbers from users


def leaf_commands(group: click.Group | None = None,
                  path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command of the ``bench`` tree (groups walked), so a new one is covered at once."""
    group = group or bench_cli.main
    ctx = click.Context(group)
    out: list[tuple[tuple[str, ...], click.Command]] = []
    for name in sorted(group.list_commands(ctx)):  # lazy commands load here
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            out += leaf_commands(cmd, (*path, name))
        else:
            out.append(((*path, name), cmd))
    return out


def _placeholders(cmd: click.Command) -> list[str]:
    """A value for each argument, so that parsing reaches the options."""
    return [p.type.choices[0] if isinstance(p.type, click.Choice) else "x"
            for p in cmd.params if isinstance(p, click.Argument)]


def numeric_options() -> list[tuple[tuple[str, ...], click.Command, click.Option]]:
    return [(path, cmd, opt) for path, cmd in leaf_commands()
            for opt in [*bench_cli.main.params, *cmd.params]
            if isinstance(opt, click.Option)
            and isinstance(opt.type, (click.types.FloatParamType, click.types.IntParamType))]


NUMERIC = numeric_options()
#: options typed as text whose value holds numbers, parsed by the command itself
TEXT_NUMBERS = [(("check",), "--tolerance", []), (("run",), "--seeds", ["--all", "--suite", "ci"]),
                (("perf",), "--sizes", [])]


def test_every_float_option_uses_the_shared_finite_type():
    floats = [(p, o.name) for p, _, o in NUMERIC
              if isinstance(o.type, click.types.FloatParamType)]
    assert len(floats) >= 9  # the walk finds them (status, run, table, data, perf ...)
    wrong = [(p, o.name) for p, _, o in NUMERIC
             if isinstance(o.type, click.types.FloatParamType)
             and not isinstance(o.type, FiniteFloatRange)]
    assert not wrong


def _bad_values(opt: click.Option) -> list[str]:
    if isinstance(opt.type, click.types.FloatParamType):
        return ["nan", "NaN", "inf", "-inf", "1e999"]
    return ["nan", "1.5", "inf"]


@pytest.mark.parametrize(("path", "cmd", "opt"), NUMERIC,
                         ids=[f"{' '.join(p)} {o.opts[-1]}" for p, _, o in NUMERIC])
def test_every_numeric_option_refuses_nan_and_inf_in_one_line_before_any_work(
        cli, tmp_path, path, cmd, opt):
    """Item 1 / deliverable 2: nan passed click's ranges (``--max-ratio nan`` unpacked a bomb,
    ``--claim-timeout nan`` never took a dead claim over); every numeric option of every
    command now refuses it, and infinity, as a usage error before the command runs."""
    results = tmp_path / "results"
    flag = opt.opts[-1]
    for value in _bad_values(opt):
        where = [flag, value, *path] if opt in bench_cli.main.params else \
            [*path, *_placeholders(cmd), flag, value]
        res = invoke(cli, results, *where)
        lines = [ln for ln in res.output.splitlines() if ln.startswith("bench: error:")]
        assert res.exit_code == 2 and len(lines) == 1, (where, res.output)
        assert flag in lines[0] and "Traceback" not in res.output, lines[0]
        assert not results.exists()


@pytest.mark.parametrize(("path", "flag", "extra"), TEXT_NUMBERS,
                         ids=[f"{' '.join(p)} {f}" for p, f, _ in TEXT_NUMBERS])
def test_numbers_in_text_options_refuse_nan_and_inf(cli, tmp_path, path, flag, extra):
    results = tmp_path / "results"
    cmd = dict(leaf_commands())[path]
    for value in ("nan", "inf", "-1e999"):
        res = invoke(cli, results, *path, *_placeholders(cmd)[:0], *extra,
                     *(["ocsvm"] if path == ("perf",) else []), f"{flag}={value}")
        lines = [ln for ln in res.output.splitlines() if ln.startswith("bench: error:")]
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert flag in lines[0], lines[0]
        assert not results.exists()


@pytest.mark.parametrize("field", ["nu", "gamma"])  # a Range, and a float-or-name union
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "nan", "1e999"])
def test_config_floats_refuse_nan_and_inf(field, value):
    """Item 10: ``--set gamma=.inf`` (and nan) left failed records; now refused up front."""
    from bench.core.config import parse_set
    from bench.methods import METHODS

    with pytest.raises(UsageError, match=field):
        METHODS.get("ocsvm").checked_config("digits", parse_set([f"{field}={value}"]))


# ------------------------------------------------------------------ item 4: reading is inert


def test_reading_results_never_imports_the_modules_they_name(cli, results, here, tmp_path):
    """Item 4: after an ad-hoc run of ``--method mod:Class``, a plain ``bench status`` imported
    ``mod`` again (its side effects ran). Reading commands show such a method by name."""
    name = f"loud_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (here / f"{name}.py").write_text(f"from pathlib import Path\nPath({str(marker)!r})"
                                     f".write_text('ran')\n{MYMOD}", encoding="utf-8")
    method = f"{name}:Mean"
    res = invoke(cli, results, "run", "--method", method, "--dataset", "digits", "--task", "3")
    assert res.exit_code == 0 and marker.exists(), res.output
    base = tmp_path / "base.csv"
    marker.unlink()
    del sys.modules[name]
    METHODS.reload_plugins()
    commands = [("status",), ("status", "--suite", "adhoc"), ("table",),
                ("table", "--suite", "adhoc"), ("report", "--suite", "adhoc"),
                ("plot", "bars", "--suite", "adhoc"),
                ("baseline", "update", "--suite", "adhoc", "-o", str(base)),
                ("check", "--suite", "adhoc", "--baseline", str(base))]
    for args in commands:
        res = invoke(cli, results, *args)
        assert res.exit_code == 0, (args, res.output)
        assert not marker.exists() and name not in sys.modules, args
        if args[0] in ("status", "table"):
            assert (method if args[0] == "table" else "adhoc-") in res.output, res.output
    assert method in base.read_text()


# ------------------------------------------------------------------ items 5, 6: the options


def _no_default(explicit: object = None) -> Path:
    if explicit is None:
        raise AssertionError("a default folder was resolved despite --results/--data-root")
    return Path(str(explicit))


def _every_command(suite: str) -> dict[tuple[str, ...], list[str]]:
    """One invocation of each command that reads or writes results or data."""
    sel = ["--suite", suite]
    one = [*sel, "--dataset", "digits", "--task", "3"]
    return {
        ("run",): ["run", *sel, "--all"],
        ("list",): ["list", "suites"],
        ("status",): ["status"],
        ("table",): ["table", *sel],
        ("plot", "bars"): ["plot", "bars", *sel],
        ("plot", "heatmap"): ["plot", "heatmap", *sel],
        ("plot", "ablation"): ["plot", "ablation", *sel],
        ("plot", "curves"): ["plot", "curves", *sel],
        ("plot", "cd"): ["plot", "cd", *sel],
        ("plot", "corruptions"): ["plot", "corruptions", *sel],
        ("plot", "roc"): ["plot", "roc", *one],
        ("plot", "overlays"): ["plot", "overlays", *one],
        ("report",): ["report", *sel],
        ("baseline", "update"): ["baseline", "update", *sel],
        ("check",): ["check", *sel],
        ("data", "status"): ["data", "status"],
        ("data", "fetch"): ["data", "fetch", "mpdd"],
        ("data", "urls"): ["data", "urls", "mpdd"],
        ("data", "verify"): ["data", "verify", "mpdd"],
        ("perf",): ["perf", "ocsvm", "--sizes", "32", "--images", "4", "--loop-images", "0",
                    "--save"],
        ("check-method",): ["check-method", "ocsvm"],
        ("check-dataset",): ["check-dataset", "digits"],
    }


def test_every_command_honours_results_and_data_root(cli, tmp_path, monkeypatch):
    """Items 5, 6 / deliverable 5: ``baseline update`` wrote under the current folder, status
    and check resolved the default data root. Every command runs with both options pointing at
    temporary folders: nothing is written anywhere else, no default folder is even resolved."""
    for module in ("bench.datasets.stored", "bench.datasets.folder", "bench.cli._common"):
        name = "results_root" if module.endswith("_common") else "data_root"
        monkeypatch.setattr(f"{module}.{name}", _no_default)
    for env in ("BENCH_RESULTS", "BENCH_DATA_ROOT"):
        monkeypatch.delenv(env, raising=False)
    home, work, results, data = (tmp_path / n for n in ("home", "work", "results", "data"))
    for folder in (home, work, data):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    fake_mvtec_category(data / "folder" / "widget")  # tasks found under --data-root only
    suite = tmp_path / "mine.yaml"
    suite.write_text("name: mine\ndatasets: {digits: ['3']}\nmethods: {ocsvm: {}}\nblocks:\n"
                     "  - {datasets: {folder: all}, methods: {ocsvm: {image_size: 16}}}\n")
    commands = _every_command(str(suite))
    assert set(commands) == {path for path, _ in leaf_commands()}  # a new command: add it
    for path, args in commands.items():
        res = invoke(cli, results, *args, data_root=data)
        assert "Traceback" not in res.output and res.exit_code in (0, 1, 2), (path, res.output)
        assert not list(work.iterdir()), (path, list(work.iterdir()))
        assert not (home / ".cache" / "bench").exists(), path
    assert (results / "baselines" / "mine.csv").is_file()  # baseline update without -o
    assert (results / "report-mine.html").is_file() and list((results / "perf").glob("*.json"))
    assert "PASS" in invoke(cli, results, "check", "--suite", str(suite), data_root=data).output


# ------------------------------------------------------------------ item 2: bench check


def test_check_fails_when_a_job_the_baseline_does_not_pin_failed(cli, results, tmp_path):
    """Item 2: ``bench check`` passed while a job of the suite failed, when the baseline did
    not pin that job (the docs say it exits 1)."""
    from bench.records.record import Record
    from bench.records.store import Store
    from bench.run.jobs import Job

    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("name: mine\ndatasets: {digits: ['3']}\nmethods: {ocsvm: {}}\n")
    two.write_text("name: mine\ndatasets: {digits: ['3', '4']}\nmethods: {ocsvm: {}}\n")
    base = tmp_path / "base.csv"
    assert invoke(cli, results, "run", "--suite", str(one), "--all").exit_code == 0
    assert invoke(cli, results, "baseline", "update", "--suite", str(one), "-o",
                  str(base)).exit_code == 0
    assert invoke(cli, results, "check", "--suite", str(two), "--baseline",
                  str(base)).exit_code == 1  # the job of task 4 has no record: missing
    job = Job.make("mine", "ocsvm", "digits", "4", 0)
    failed = Record.new(job, created="now", versions={}, git=None).finish(
        timing_s={}, peak_rss_mb=None, peak_gpu_mb=None, status="failed", error="it broke")
    Store(results).write(failed)
    res = invoke(cli, results, "check", "--suite", str(two), "--baseline", str(base))
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and "it broke" in res.output


def test_one_suite_without_its_data_does_not_stop_status_for_the_others(cli, results, tmp_path,
                                                                       monkeypatch):
    """Item 6: an ad-hoc suite whose folder dataset is gone made ``bench status`` fail for
    every suite; it is one row saying why, and the others are listed."""
    gone = tmp_path / "gone"
    definition = results / "runs" / "adhoc-0000beef" / "suite.yaml"
    definition.parent.mkdir(parents=True)
    definition.write_text(f"name: adhoc-0000beef\nseeds: [0]\ndatasets: {{'folder:{gone}': all}}"
                          "\nmethods: {ocsvm: [{}]}\n")
    monkeypatch.setenv("COLUMNS", "300")  # rich: one line per row
    res = invoke(cli, results, "status", data_root=tmp_path / "data")
    assert res.exit_code == 0, res.output
    assert "adhoc-0000beef" in res.output and "unavailable" in res.output
    assert "demo" in res.output and "paper" in res.output


def test_an_error_quoting_a_huge_value_is_cut(cli, results):
    """Item 3: the alias bomb printed a 312 MB error line; a message is cut to a few kB."""
    res = invoke(cli, results, "run", "--suite", "demo", "--method", "ocsvm", "--dataset",
                 "digits", "--task", "3", "--set", "nu=" + "x" * 100_000)
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("bench: error:")]
    assert res.exit_code == 2 and len(line) < 5000 and "more characters" in line, line[:200]
