"""Plugins: entry points of fake distributions (a ``*.dist-info`` folder on ``sys.path``) and
``package.module:Class`` names, in the registries, the CLI, the worker processes and the
records; broken plugins are one line each, and the rest still runs."""

from __future__ import annotations

import csv
import importlib
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.core.errors import UsageError
from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.records.record import Record
from bench.records.store import Store
from tests.conftest import invoke

#: a correct detector, a correct in-memory dataset, and broken things (module source)
GOOD = textwrap.dedent('''
    from dataclasses import dataclass
    from bench.core.config import PositiveInt
    from bench.methods.base import Method, MethodConfig, MethodSpec, Scores
    from bench.testing import Synthetic


    @dataclass(frozen=True, kw_only=True)
    class MeanConfig(MethodConfig):
        batch_size: PositiveInt = 64


    class Mean(Method):
        """Distance to the mean training image."""

        Config = MeanConfig
        localizes = True

        def fit(self, train, ctx):
            self.mean_ = train.batch(slice(None)).mean(dim=0)
            return self

        def score(self, test, ctx):
            maps = (test.batch(slice(None)) - self.mean_).abs().mean(dim=1).numpy()
            return Scores(image=maps.mean(axis=(1, 2)), maps=maps)


    SMALL = MethodSpec(name="whatever", cls=Mean, defaults={"batch_size": 8},
                       summary="the same, small batches")


    class Blobs(Synthetic):
        name = "fake_blobs"
        family = "fake"
''')
BROKEN = textwrap.dedent('''
    from bench.methods.base import Method
    from bench.testing import Synthetic


    class NoScore(Method):
        def fit(self, train, ctx):
            return self


    NOT_A_METHOD = 42


    class Crashy(Synthetic):
        name = "fake_crashy"

        def tasks_in(self, root):
            raise RuntimeError("a bug")
''')


def write_dist(site: Path, dist: str, version: str, modules: dict[str, str],
               entry_points: dict[str, dict[str, str]]) -> None:
    """A distribution as pip leaves it: modules and a ``.dist-info`` with its entry points."""
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source, encoding="utf-8")
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
                                   encoding="utf-8")
    text = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
                   for group, eps in entry_points.items())
    (info / "entry_points.txt").write_text(text, encoding="utf-8")


def reload_registries() -> None:
    importlib.invalidate_caches()
    METHODS.reload_plugins()
    DATASETS.reload_plugins()


@pytest.fixture
def isolated_path() -> Iterator[None]:
    """sys.path and the plugin registries as they were, after the test."""
    saved = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = saved
    for name in set(sys.modules) - modules:
        if name.startswith(("fakeplug", "brokenplug", "mymod")):
            del sys.modules[name]
    reload_registries()


@pytest.fixture
def fakeplug(tmp_path: Path, isolated_path: None) -> str:
    """Two installed fake distributions: ``fakeplug`` 1.2.3 (a method, a variant, a dataset)
    and ``brokenplug`` 0.1 (a module that fails to import, a class that breaks the contract,
    an object that is no method, a built-in's name). Returns the good module's name."""
    site = tmp_path / "site"
    site.mkdir()
    good = f"fakeplug_{uuid.uuid4().hex[:8]}"  # loky reuses workers: one module per test
    write_dist(site, "fakeplug", "1.2.3", {good: GOOD}, {
        "bench.methods": {"fake_mean": f"{good}:Mean", "fake_mean_small": f"{good}:SMALL"},
        "bench.datasets": {"fake_blobs": f"{good}:Blobs"}})
    write_dist(site, "brokenplug", "0.1", {"brokenplug_mod": BROKEN}, {
        "bench.methods": {"fake_noimport": "brokenplug_missing:Thing",
                          "fake_noscore": "brokenplug_mod:NoScore",
                          "fake_number": "brokenplug_mod:NOT_A_METHOD",
                          "mkd": f"{good}:Mean"},
        "bench.datasets": {"fake_crashy": "brokenplug_mod:Crashy"}})
    sys.path.insert(0, str(site))
    reload_registries()
    return good


def errors(res) -> list[str]:
    return [ln for ln in res.output.splitlines() if ln.startswith("bench: error:")]


# ------------------------------------------------------------------------------ registries
def test_entry_points_join_the_registries_with_their_origin(fakeplug):
    assert {"fake_mean", "fake_mean_small"} <= set(METHODS.names())
    assert "fake_blobs" in DATASETS.names()
    spec = METHODS.get("fake_mean")
    assert spec.summary == "Distance to the mean training image." and spec.defaults == {}
    assert METHODS.get("fake_mean_small").defaults == {"batch_size": 8}
    assert METHODS.get("fake_mean_small").name == "fake_mean_small"
    origin = METHODS.origin("fake_mean")
    assert origin is not None and (origin.distribution, origin.version) == ("fakeplug", "1.2.3")
    assert origin.as_record() == {"distribution": "fakeplug", "version": "1.2.3",
                                  "object": f"{fakeplug}:Mean"}
    assert METHODS.origin("mkd") is None and DATASETS.origin("digits") is None


def test_broken_plugins_are_left_out_with_one_line_each(fakeplug):
    # (bench's own anomalib.* entry points wait for their extra where anomalib is missing)
    msgs = {e.name: e.message for e in METHODS.plugin_errors() if e.missing is None}
    assert set(msgs) == {"fake_noimport", "fake_noscore", "fake_number", "mkd"}
    assert all("\n" not in m and "brokenplug 0.1" in m for m in msgs.values())
    assert "cannot import it: ModuleNotFoundError" in msgs["fake_noimport"]
    assert "breaks the method contract: does not implement score" in msgs["fake_noscore"]
    assert "neither a Method subclass nor a MethodSpec" in msgs["fake_number"]
    assert "reuses the name of a built-in method" in msgs["mkd"]
    assert METHODS.get("mkd").cls.__name__ == "MKD"  # the built-in stays
    with pytest.raises(UsageError, match=r"method plugin 'fake_noscore' \(brokenplug 0.1"):
        METHODS.get("fake_noscore")
    assert "fake_noscore" not in METHODS and "fake_noscore" not in METHODS.names()


def test_bench_list_shows_plugins_and_warns_about_broken_ones(cli, results, fakeplug,
                                                              monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    res = invoke(cli, results, "list", "methods")
    assert res.exit_code == 0, res.output
    assert "fake_mean" in res.output and "fakeplug 1.2.3" in res.output
    assert "built-in" in res.output and "ocsvm" in res.output
    warnings = [ln for ln in res.output.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 4 and all("brokenplug 0.1" in w for w in warnings)
    res = invoke(cli, results, "list", "datasets")
    assert res.exit_code == 0 and "fake_blobs" in res.output and "fakeplug 1.2.3" in res.output
    assert "(cannot list them: RuntimeError: a bug)" in res.output and "digits" in res.output


def test_without_plugins_the_listing_is_as_before(cli, results, isolated_path, monkeypatch):
    monkeypatch.setattr("bench.core.registry.metadata.entry_points", lambda group: [])
    reload_registries()  # as if no plugin were installed (CI installs the example's)
    res = invoke(cli, results, "list", "methods")
    assert res.exit_code == 0 and "plugin" not in res.output and "warning" not in res.output


def test_selecting_a_broken_plugin_is_one_line(cli, results, fakeplug, tmp_path):
    res = invoke(cli, results, "run", "--method", "fake_noscore", "--dataset", "digits")
    assert res.exit_code == 2 and len(errors(res)) == 1
    assert "fake_noscore" in errors(res)[0] and "does not implement score" in errors(res)[0]
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndatasets: {digits: ['3']}\nmethods: {fake_noimport: {}}\n")
    res = invoke(cli, results, "run", "--suite", str(suite), "--all")
    assert res.exit_code == 2 and "cannot import it" in errors(res)[0]
    assert "(in suite s)" in errors(res)[0]
    assert not (results / "runs").exists()


def _records(results: Path, suite: str) -> dict[tuple[str, str], Record]:
    return {(r.job.method, r.job.dataset): r for r in Store(results).records(suite)}


def test_plugins_run_in_a_suite_in_worker_processes(cli, results, fakeplug, tmp_path):
    suite = tmp_path / "mix.yaml"
    suite.write_text("name: mix\ndatasets: {fake_blobs: all, digits: ['3']}\n"
                     "methods: {fake_mean: {}, fake_mean_small: {}, ocsvm: {}}\n")
    res = invoke(cli, results, "run", "--suite", str(suite), "--all", "--jobs", "2")
    assert res.exit_code == 0, res.output
    recs = _records(results, "mix")
    assert len(recs) == 6 and all(r.ok for r in recs.values())
    plugin = {"distribution": "fakeplug", "version": "1.2.3", "object": f"{fakeplug}:Mean"}
    assert recs["fake_mean", "digits"].plugin == plugin
    assert recs["fake_mean_small", "digits"].plugin == {**plugin, "object": f"{fakeplug}:SMALL"}
    assert recs["fake_mean", "digits"].dataset_plugin is None
    assert recs["ocsvm", "fake_blobs"].plugin is None
    assert recs["ocsvm", "fake_blobs"].dataset_plugin == {
        "distribution": "fakeplug", "version": "1.2.3", "object": f"{fakeplug}:Blobs"}
    raw = json.loads(Store(results).path(recs["ocsvm", "digits"].job).read_text())
    assert "plugin" not in raw and "dataset_plugin" not in raw  # built-ins: records unchanged
    # each job in a process of its own (--timeout): the plugin imports there too
    res = invoke(cli, results, "run", "--suite", str(suite), "--method", "fake_mean",
                 "--seeds", "1", "--timeout", "120")
    assert res.exit_code == 0, res.output
    again = [r for r in Store(results).records("mix") if r.job.seed == 1]
    assert len(again) == 2 and all(r.ok and r.plugin == plugin for r in again)
    table = invoke(cli, results, "table", "--suite", str(suite), "--dataset", "fake_blobs")
    assert table.exit_code == 0 and "fake_mean" in table.output


def test_check_names_the_plugin_version_of_a_moved_score(cli, results, fakeplug, tmp_path):
    suite = tmp_path / "pin.yaml"
    suite.write_text("name: pin\ndatasets: {digits: ['3']}\nmethods: {fake_mean: {}, kde: {}}\n")
    assert invoke(cli, results, "run", "--suite", str(suite), "--all").exit_code == 0
    base = tmp_path / "base.csv"
    res = invoke(cli, results, "baseline", "update", "--suite", str(suite), "-o", str(base))
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(base.open()))
    for row in rows:  # pretend the plugin used to score better
        if row["method"] == "fake_mean" and row["metric"] == "image_auroc":
            row["value"] = "1.000000"
    with base.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    res = invoke(cli, results, "check", "--suite", str(suite), "--baseline", str(base))
    assert res.exit_code == 1
    line = next(ln for ln in res.output.splitlines() if "REGRESSION" in ln)
    assert "fake_mean digits/3" in line and line.endswith("(plugin fakeplug 1.2.3)")
    assert "plugins in these records: fake_mean: fakeplug 1.2.3" in res.output


# --------------------------------------------------------------------------- import names
MYMOD = textwrap.dedent('''
    from dataclasses import dataclass, replace
    from bench.methods.base import Method, MethodConfig, Scores


    class Mean(Method):
        """Distance to the mean training image, not packaged."""

        def fit(self, train, ctx):
            self.mean_ = train.batch(slice(None)).mean(dim=0)
            return self

        def score(self, test, ctx):
            d = (test.batch(slice(None)) - self.mean_).abs().mean(dim=(1, 2, 3)).numpy()
            return Scores(image=d)


    class Inverted(Mean):
        def score(self, test, ctx):
            return Scores(image=-super().score(test, ctx).image)
''')


@pytest.fixture
def mymod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_path: None) -> str:
    """A module in the current folder, not on sys.path (as ``bench`` is run beside it)."""
    name = f"mymod_{uuid.uuid4().hex[:8]}"
    work = tmp_path / "work"
    work.mkdir()
    (work / f"{name}.py").write_text(MYMOD, encoding="utf-8")
    monkeypatch.chdir(work)
    for entry in ("", str(work)):
        while entry in sys.path:
            sys.path.remove(entry)
    return name


def test_module_class_names_run_ad_hoc_and_in_workers(cli, results, mymod):
    name = f"{mymod}:Mean"
    res = invoke(cli, results, "run", "--method", name, "--method", "kde", "--dataset", "digits",
                 "--task", "3", "--task", "5", "--jobs", "2")
    assert res.exit_code == 0, res.output
    recs = Store(results).records()
    mine = [r for r in recs if r.job.method == name]
    assert len(recs) == 4 and all(r.ok for r in recs) and len(mine) == 2
    assert mine[0].plugin == {"distribution": None, "version": None, "object": name}
    assert name not in METHODS.names()  # looked up, never listed
    res = invoke(cli, results, "run", "--method", f"{mymod}:Nope", "--dataset", "digits")
    assert res.exit_code == 2 and f"{mymod} has no 'Nope'" in errors(res)[0]
    res = invoke(cli, results, "run", "--method", "no_such_module_x:Mean", "--dataset", "digits")
    assert res.exit_code == 2
    assert "cannot import no_such_module_x: ModuleNotFoundError" in errors(res)[0]


def test_module_class_names_in_a_suite_file(cli, results, mymod, tmp_path):
    suite = tmp_path / "own.yaml"
    suite.write_text(f'name: own\ndatasets: {{digits: ["3"]}}\nmethods: {{"{mymod}:Mean": {{}}}}\n')
    res = invoke(cli, results, "run", "--suite", str(suite), "--all")
    assert res.exit_code == 0, res.output
    [rec] = Store(results).records("own")
    assert rec.ok and rec.plugin is not None and rec.plugin["object"] == f"{mymod}:Mean"


def test_check_method_command(cli, results, mymod):
    res = invoke(cli, results, "check-method", f"{mymod}:Mean")
    assert res.exit_code == 0, res.output
    assert "pass" in res.output and "15 passed, 0 failed" in res.output
    res = invoke(cli, results, "check-method", f"{mymod}:Inverted")
    assert res.exit_code == 1
    assert "FAIL" in res.output and "higher = more anomalous" in res.output
    assert "1 failed" in res.output
    res = invoke(cli, results, "check-method", "ocsvm", "--set", "nu=2")
    assert res.exit_code == 1 and "configs" in res.output
    res = invoke(cli, results, "check-method", "no_such_method")
    assert res.exit_code == 2 and errors(res)[0].startswith("bench: error: unknown method")


def test_check_dataset_command(cli, results, fakeplug):
    res = invoke(cli, results, "check-dataset", "fake_blobs")
    assert res.exit_code == 0, res.output
    assert "8 passed, 0 failed" in res.output
    res = invoke(cli, results, "check-dataset", "mvtec", data_root=results / "nowhere")
    assert res.exit_code == 1 and "data available" in res.output and "mvtec not found" in \
        " ".join(res.output.split())


def test_folder_names_are_never_import_names():
    assert "write folder:/absolute/path" in str(DATASETS.unavailable("folder:parts"))
    assert DATASETS.unavailable("folder:/data/parts") is None
    assert DATASETS.unavailable("digits") is None and METHODS.unavailable("nope") is None


def test_plugins_reach_dask_workers(cli, results, fakeplug):
    pytest.importorskip("distributed")
    res = invoke(cli, results, "run", "--backend", "dask", "--jobs", "2", "--method",
                 "fake_mean", "--dataset", "fake_blobs", "--dataset", "digits", "--task", "3",
                 "--task", "blobs")
    assert res.exit_code == 0, res.output
    recs = Store(results).records()
    assert len(recs) == 2 and all(r.ok and r.runner["backend"] == "dask" for r in recs)
    assert all(r.plugin is not None and r.plugin["distribution"] == "fakeplug" for r in recs)


# ------------------------------------------------------- a plugin waiting for an optional extra
WAITING = textwrap.dedent('''
    from bench.core.errors import MissingDependency

    raise MissingDependency("needs somelib, which is not installed; install the extra: "
                            "pip install -e '.[somelib]'")
''')


@pytest.fixture
def waitplug(tmp_path: Path, isolated_path: None) -> None:
    """An installed distribution whose two methods need a package that is not installed (as
    ``anomalib.*`` without the extra)."""
    site = tmp_path / "site"
    site.mkdir()
    write_dist(site, "waitplug", "2.0", {"waitplug_mod": WAITING}, {
        "bench.methods": {"some.One": "waitplug_mod:One", "some.Two": "waitplug_mod:Two"}})
    sys.path.insert(0, str(site))
    reload_registries()


def test_a_missing_extra_is_one_hint_in_the_listing_and_no_warning(cli, results, waitplug,
                                                                    monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    errs = {e.name: e for e in METHODS.plugin_errors()}
    assert errs["some.One"].missing and "install the extra" in errs["some.One"].missing
    res = invoke(cli, results, "list", "methods")
    assert res.exit_code == 0 and "some.One" not in res.output.split("hint:")[0]
    lines = res.output.splitlines()
    assert not [ln for ln in lines if ln.startswith("warning: ")]
    # one hint per missing extra: this one's, and anomalib's where that extra is not installed
    hints = [ln for ln in lines if ln.startswith("hint: ") and "somelib" in ln]
    assert len(hints) == 1 and "some.One, some.Two" in hints[0] and "[somelib]" in hints[0]


def test_naming_a_method_of_a_missing_extra_stops_before_any_job(cli, results, waitplug,
                                                                 tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndatasets: {digits: ['3']}\nmethods: {some.Two: {}, ocsvm: {}}\n")
    res = invoke(cli, results, "run", "--suite", str(suite), "--all")
    assert res.exit_code == 2 and len(errors(res)) == 1, res.output
    assert "some.Two" in errors(res)[0] and "install the extra" in errors(res)[0]
    assert not (results / "runs").exists()
