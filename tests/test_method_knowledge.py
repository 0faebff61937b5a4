"""Method knowledge stays in methods: the harness reads what a method declares and never names
a method itself."""

from __future__ import annotations

import ast
import pkgutil
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import bench.methods
from bench.core.metrics import pixel_auroc_mkd
from bench.datasets.base import TaskData
from bench.methods import METHODS
from bench.methods.base import Method, MethodSpec, RunContext, Scores
from bench.records.record import Record
from bench.records.store import Store
from bench.report.html import localizing_ids
from bench.run.execute import run_job
from bench.run.jobs import Job

BENCH = Path(__file__).resolve().parents[1] / "bench"
#: the harness below the CLI: it reads what methods declare and names none of them
GENERIC = ("core", "records", "run", "perf", "report")
#: the distribution's name, ``bench-mkd``, is not a method's
DISTRIBUTION = "bench-mkd"


def _method_names() -> tuple[set[str], set[str], set[str]]:
    """Registered names and the names of what methods declare (extra maps, the config fields
    of perf's training variants); method classes (with their private bases); method modules."""
    specs = [METHODS.get(n) for n in METHODS.names()]
    declared = {k for spec in specs for k in spec.cls.extra_map_protocols} | {
        k for spec in specs for v in spec.cls.perf_profile.train_variants.values() for k in v}
    names = set(METHODS.names()) | declared
    classes = {c.__name__ for spec in specs for c in spec.cls.__mro__
               if issubclass(c, Method) and c is not Method}
    modules = {f"bench.methods.{m.name}" for m in pkgutil.iter_modules(bench.methods.__path__)
               if m.name != "base"}
    return names, classes, modules


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def method_mentions(source: str) -> list[str]:
    """Where code (not docstrings, not comments) names a method: a registered name (or a name a
    method declares) as a word of a string or an identifier, a method class as an identifier
    (prose may still name the paper), or an import of a method's module."""
    names, classes, modules = _method_names()
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []

    def method_module(module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in modules)

    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            words = re.findall(r"\w+", node.value.replace(DISTRIBUTION, ""))
            found += [f"line {line}: {w}" for w in words if w in names]
            continue
        if isinstance(node, ast.Import):
            found += [f"line {line}: imports {a.name}" for a in node.names if method_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and method_module(node.module):
            found.append(f"line {line}: imports {node.module}")
        identifiers = {ast.Name: "id", ast.Attribute: "attr", ast.FunctionDef: "name",
                       ast.AsyncFunctionDef: "name", ast.ClassDef: "name", ast.arg: "arg",
                       ast.alias: "asname", ast.keyword: "arg"}
        attr = identifiers.get(type(node))
        word = getattr(node, attr) if attr else None
        if word in names or word in classes:
            found.append(f"line {line}: {word}")
    return found


@pytest.mark.parametrize("package", GENERIC)
def test_generic_code_names_no_method(package):
    offenders = {str(path.relative_to(BENCH)): hits for path in sorted((BENCH / package).rglob(
        "*.py")) if (hits := method_mentions(path.read_text(encoding="utf-8")))}
    assert offenders == {}


def test_the_check_finds_method_names():
    code = '''"""Docstrings may say mkd and MKD."""
from bench.methods.mkd import MKD
from bench.methods.base import Scores
import bench.methods.mkd.nets

def f(r):  # comments too: mkd
    if r["method"].startswith("mkd"):
        return MKD
    return {"metric": "pixel_auroc_mkd", "install": "pip install bench-mkd", "x": "padim",
            "maps": "mkd_code"}
'''
    assert set(method_mentions(code)) == {
        "line 2: imports bench.methods.mkd", "line 4: imports bench.methods.mkd.nets",
        "line 7: mkd", "line 8: MKD", "line 9: padim", "line 10: mkd_code"}


def test_overlays_show_first_the_maps_a_method_made_for_a_protocol():
    def record(task: str, maps_from: str | None, maps: bool = True) -> Record:
        protocol = None if maps_from is None else {"mkd_protocol_maps": maps_from}
        return Record(job=Job.make("s", "m", "d", task, 0), pixel_protocol=protocol,
                      artifacts={"maps": "maps.npz" if maps else None})

    records = [record("a", "per-image min-max"), record("b", None, maps=False),
               record("d", "method"), record("c", "method")]
    tasks = {r.id: r.job.task for r in records}
    ids = localizing_ids(records)
    assert [tasks[i] for i in ids][:2] == sorted(["c", "d"], key=lambda t: Job.make(
        "s", "m", "d", t, 0).id) and tasks[ids[2]] == "a" and len(ids) == 3


class _Maps(Method):
    """Bright pixels are anomalous; also returns inverted maps under the name ``alt``."""

    localizes = True
    extra_map_protocols: ClassVar[dict[str, str]] = {"alt": "pixel_auroc_mkd"}
    seen: ClassVar[list[tuple[TaskData, np.ndarray]]] = []

    def fit(self, train: TaskData, ctx: RunContext) -> _Maps:
        return self

    def score(self, test: TaskData, ctx: RunContext) -> Scores:
        x = test.images.numpy().astype(np.float64).mean(axis=1)
        maps = np.abs(x - np.median(x, axis=(1, 2), keepdims=True))
        alt = 1.0 - maps / maps.max()
        self.seen.append((test, alt))
        return Scores(image=maps.reshape(len(x), -1).max(axis=1), maps=maps,
                      extra_maps={"alt": alt})


class _Undeclared(_Maps):
    extra_map_protocols: ClassVar[dict[str, str]] = {}


def _run(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, cls: type[Method]) -> dict[str, Any]:
    monkeypatch.setitem(METHODS._items, "toy_maps",
                        MethodSpec(name="toy_maps", cls=cls, defaults={}, summary="test only"))
    job = Job.make("toy", "toy_maps", "textures", "brick", 0)
    out = run_job(job, results_root=tmp_path)
    return {"summary": out, "record": Store(tmp_path).read(job)}


def test_a_declared_extra_map_feeds_its_metric(monkeypatch, tmp_path):
    _Maps.seen.clear()
    rec = _run(monkeypatch, tmp_path, _Maps)["record"]
    assert rec.status == "ok", rec.error
    test, alt = _Maps.seen[0]  # the test set (the harness then scores the training set)
    assert test.masks is not None
    want = pixel_auroc_mkd(test.masks.numpy(), alt, test.labels)
    assert rec.metrics["pixel_auroc_mkd"] == pytest.approx(want)
    assert rec.pixel_protocol["mkd_protocol_maps"] == "method"


def test_an_undeclared_extra_map_fails_the_job(monkeypatch, tmp_path):
    out = _run(monkeypatch, tmp_path, _Undeclared)["summary"]
    assert out.status == "failed" and "declares no protocol" in (out.error or "")
