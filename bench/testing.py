"""The method and dataset contracts as public checks (scikit-learn's ``check_estimator`` idea).

``check_method(name_or_class)`` fits and scores the method on a tiny synthetic task through the
harness's own code path (config resolution, the dataset's resize, the metrics) and checks what
every job relies on; ``check_dataset(name_or_class)`` loads one task and checks what every
method relies on. Both return a :class:`CheckReport` (one :class:`Check` per property, passed,
failed with its reason, or skipped because an earlier one failed) and raise an
``AssertionError`` listing the failures unless ``raise_on_failure=False``::

    from bench.testing import check_method, check_dataset

    def test_my_detector():
        check_method(MyDetector)                 # a class, a MethodSpec or a registered name

    def test_my_dataset(tmp_path):
        make_tiny_images(tmp_path / "my_images")
        check_dataset("my_images", root=tmp_path)

``bench check-method NAME`` and ``bench check-dataset NAME`` print the report. The project's own
contract tests (``tests/methods/test_contract.py``) call the same functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cloudpickle
import numpy as np
import torch

from bench.core.config import apply_overrides, to_plain
from bench.core.errors import BenchError, UsageError
from bench.core.settings import FEW_SHOT, UNIFIED, UNIFIED_TASK
from bench.datasets import DATASETS, corruptions
from bench.datasets.base import (
    DatasetInfo,
    DatasetProtocol,
    InputSpec,
    TaskData,
    as_protocol,
    build_taskdata,
    protocol_problems,
    to_pil,
)
from bench.methods import METHODS
from bench.methods.base import (
    ANY_FAMILY,
    Method,
    MethodSpec,
    RunContext,
    Scores,
    as_method_spec,
    declaration_problems,
)
from bench.records.key import Job
from bench.run.execute import score_metrics, seed_everything
from bench.run.setting import Prepared, category_metrics, prepare

__all__ = ["Check", "CheckReport", "Synthetic", "SyntheticCategories", "check_dataset",
           "check_method", "synthetic_task"]


# ----------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class Check:
    """One property: ``passed`` True, False, or None when skipped; ``detail`` says why."""

    name: str
    passed: bool | None
    detail: str = ""

    @property
    def outcome(self) -> str:
        return {True: "pass", False: "FAIL", None: "skip"}[self.passed]


@dataclass
class CheckReport:
    """Every check run on one method or dataset, in order."""

    subject: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def summary(self) -> str:
        counts = {o: sum(c.outcome == o for c in self.checks) for o in ("pass", "FAIL", "skip")}
        return (f"{self.subject}: {'ok' if self.ok else 'FAILED'} ({counts['pass']} passed, "
                f"{counts['FAIL']} failed, {counts['skip']} skipped)")

    def raise_for_failures(self) -> None:
        """An ``AssertionError`` naming every failed check and its reason."""
        if not self.ok:
            lines = [f"  {c.name}: {c.detail}" for c in self.failures]
            raise AssertionError("\n".join([self.summary(), *lines]))


class _Skip(Exception):
    """A check that cannot run because one it depends on failed."""


class _Runner:
    """Runs named checks in order, recording each; a failed one makes its dependents skip."""

    def __init__(self, subject: str) -> None:
        self.report = CheckReport(subject)
        self.failed: set[str] = set()

    def run(self, name: str, fn: Callable[[], str | None], *, needs: Sequence[str] = ()) -> bool:
        blocked = [n for n in needs if n in self.failed]
        if blocked:
            self.failed.add(name)
            self.report.checks.append(Check(name, None, f"needs {', '.join(blocked)}"))
            return False
        try:
            detail = fn() or ""
        except _Skip as exc:
            self.failed.add(name)
            self.report.checks.append(Check(name, None, str(exc)))
            return False
        except Exception as exc:  # AssertionError: the check's own verdict; others: a crash
            self.failed.add(name)
            text = " ".join(str(exc).split())
            if not isinstance(exc, AssertionError):
                text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            self.report.checks.append(Check(name, False, text or "failed"))
            return False
        self.report.checks.append(Check(name, True, detail))
        return True


@contextlib.contextmanager
def _global_rng_kept() -> Iterator[None]:
    """Seeding as the harness does is done here; the caller's global RNG state comes back."""
    py, npy, th = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    det = torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.random.set_rng_state(th)
        if torch.are_deterministic_algorithms_enabled() != det:
            torch.use_deterministic_algorithms(det)


# ---------------------------------------------------------------------- the synthetic task
def synthetic_task(n_train: int = 24, n_test: int = 20, size: int = 32, seed: int = 0,
                   defect: float = 0.8, level: float = 0.4) -> tuple[TaskData, TaskData]:
    """Smooth random grey images (around grey ``level``) as normals; the second half of the
    test images carry an obvious anomaly, a bright square, with its mask. RGB ``uint8``,
    ``size`` x ``size``."""
    rng = np.random.default_rng(seed)

    def normal(n: int) -> np.ndarray:
        base = rng.normal(level, 0.05, size=(n, 1, size // 4, size // 4))
        up = np.kron(base, np.ones((1, 1, 4, 4)))
        return np.clip(up + rng.normal(0, 0.02, size=(n, 1, size, size)), 0, 1)

    train = normal(n_train)
    test = normal(n_test)
    labels = np.zeros(n_test, dtype=np.int64)
    labels[n_test // 2:] = 1
    masks = np.zeros((n_test, size, size), dtype=np.float32)
    s = size // 4
    for i in np.flatnonzero(labels):
        y, x = rng.integers(0, size - s, size=2)
        test[i, :, y:y + s, x:x + s] = defect
        masks[i, y:y + s, x:x + s] = 1.0

    def to_u8(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.rint(np.repeat(a, 3, axis=1) * 255).astype(np.uint8))

    return (TaskData(to_u8(train), np.zeros(n_train, dtype=np.int64), name="synthetic/train"),
            TaskData(to_u8(test), labels, torch.from_numpy(masks), name="synthetic/test"))


class Synthetic(DatasetProtocol):
    """:func:`synthetic_task` as a dataset protocol, so that a method gets it at the size its
    config asks for, through the same resize as real data (family ``""``: no preset)."""

    name = "synthetic"
    family = ""
    default_size = 32
    has_masks = True
    embedded = True
    info = DatasetInfo(title="synthetic blobs with a bright square", source="bench.testing",
                       license="-", size="24 train, 20 test", obtain="generated")

    def tasks(self) -> list[str]:
        return ["blobs"]

    #: grey level of each task's normal images
    levels: ClassVar[Mapping[str, float]] = {"blobs": 0.4}

    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        self.check_task(task)
        spec = spec or InputSpec()
        out = []
        for split in synthetic_task(size=self.default_size, seed=seed, level=self.levels[task]):
            images = [to_pil(im.numpy().transpose(1, 2, 0)) for im in split.images]
            masks = (None if split.masks is None else
                     [to_pil(m.numpy()) for m in split.masks])
            out.append(build_taskdata(images, split.labels, spec, self.default_size,
                                      masks=masks, name=f"synthetic/{task}"))
        return out[0], out[1]


class SyntheticCategories(Synthetic):
    """:class:`Synthetic` with two categories of different grey levels, for the unified
    setting (one model on both)."""

    name = "synthetic-categories"
    supports_unified = True
    levels: ClassVar[Mapping[str, float]] = {"dark": 0.3, "light": 0.55}

    def tasks(self) -> list[str]:
        return list(self.levels)


# ------------------------------------------------------------------------------- methods
MethodTarget = str | type[Method] | MethodSpec


def _method_spec(target: MethodTarget) -> MethodSpec:
    if isinstance(target, str):
        return METHODS.get(target)
    name = getattr(target, "name", None) if isinstance(target, MethodSpec) else (
        f"{target.__module__}:{target.__qualname__}" if isinstance(target, type) else None)
    return as_method_spec(str(name), target)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-6))


def check_method(target: MethodTarget, *, overrides: Mapping[str, Any] | None = None,
                 seed: int = 0, raise_on_failure: bool = True) -> CheckReport:
    """Check a method against the contract (``methods/base.py``) on a tiny synthetic task.

    Args:
        target: a registered name (plugins and ``package.module:Class`` names included), a
            :class:`~bench.methods.base.Method` subclass or a
            :class:`~bench.methods.base.MethodSpec`.
        overrides: config values on top of the spec's ``test_overrides`` (the settings that
            make it tiny: few epochs, random weights).
        seed: the job seed.
        raise_on_failure: raise an ``AssertionError`` listing the failed checks.

    Checks: the declarations (``Config``, ``localizes``, ``presets``,
    ``extra_map_protocols``, ``perf_profile``); every preset and the test settings resolve and
    pass ``check_config``; the config is frozen and survives the record's JSON; ``fit`` returns
    ``self`` and prints nothing; finite image scores, one per test image; maps of the test
    images' size exactly when ``localizes``, extra maps as declared; the harness's metrics
    compute; the obvious anomalies score higher; the same seed gives the same scores; the spec
    and the method pickle (as they travel to worker processes); ``provenance`` and
    ``fit_info`` are plain; and the settings (docs/settings.md), through the harness's own data
    preparation: ``unified`` (one model on two categories, per-category metrics), ``few-shot``
    (k=1), ``corrupted`` (finite scores on every corruption at severity 5; the clean test
    images and their scores unchanged afterwards).
    """
    label = target if isinstance(target, str) else getattr(target, "__name__",
                                                           getattr(target, "name", "?"))
    run = _Runner(f"method {label}")
    state: dict[str, Any] = {}
    data = Synthetic()

    def resolve() -> str:
        state["spec"] = spec = _method_spec(target)
        return f"{spec.cls.__module__}.{spec.cls.__qualname__}"

    def declarations() -> str:
        problems = declaration_problems(state["spec"].cls)
        assert not problems, "; ".join(problems)
        cls = state["spec"].cls
        return (f"localizes={cls.localizes}, presets: {', '.join(cls.presets) or 'none'}, "
                f"extra maps: {', '.join(cls.extra_map_protocols) or 'none'}")

    def configs() -> str:
        spec: MethodSpec = state["spec"]
        for family in ("", *spec.cls.presets):
            spec.config("" if family == ANY_FAMILY else family)
        test = {**spec.test_overrides, **(overrides or {})}
        state["overrides"] = test
        state["config"] = spec.checked_config(data.family, test)
        return f"test settings: {json.dumps(to_plain(test), sort_keys=True)}" if test else \
            "defaults"

    def round_trip() -> str:
        cfg = state["config"]
        try:
            cfg.image_size = cfg.image_size
        except dataclasses.FrozenInstanceError:
            pass
        else:
            raise AssertionError("the config is not frozen: setting a field worked")
        plain = json.loads(json.dumps(to_plain(cfg)))
        back = apply_overrides(type(cfg)(), plain)
        assert back == cfg, (f"the config read back from the record's JSON differs: {back} != "
                             f"{cfg}")
        return "frozen; JSON -> config gives it back"

    def fit_score(seed_: int) -> tuple[Method, TaskData, Scores, str]:
        spec: MethodSpec = state["spec"]
        method = spec.build(data.family, state["overrides"])
        train, test = data.load("blobs", None, seed_, method.input_spec())
        ctx = RunContext(seed=seed_, family=data.family)
        out = io.StringIO()
        with _global_rng_kept(), contextlib.redirect_stdout(out):
            seed_everything(seed_)
            fitted = method.fit(train, ctx)
            assert fitted is method, f"fit returned {type(fitted).__name__}, not self"
            scores = method.score(test, ctx)
        return method, test, scores, out.getvalue()

    def fit() -> str:
        method, test, scores, printed = fit_score(seed)
        state.update(method=method, test=test, scores=scores)
        assert not printed.strip(), f"fit/score printed {printed.strip()[:80]!r} (methods " \
            "never print)"
        assert isinstance(method.history_, list), "history_ is not a list"
        return f"fit returns self on {test.size[0]}x{test.size[1]} images"

    def image_scores() -> str:
        scores, test = state["scores"], state["test"]
        assert isinstance(scores, Scores), f"score returned {type(scores).__name__}, not Scores"
        image = np.asarray(scores.image)
        assert image.shape == (len(test),), \
            f"image scores of shape {image.shape} for {len(test)} images"
        assert np.issubdtype(image.dtype, np.number), f"image scores of dtype {image.dtype}"
        assert np.isfinite(image).all(), f"{int((~np.isfinite(image)).sum())} score(s) NaN/inf"
        return f"{len(test)} finite scores"

    def maps() -> str:
        scores, test, cls = state["scores"], state["test"], state["spec"].cls
        want = (len(test), *test.size)
        if cls.localizes:
            assert scores.maps is not None, "localizes is True but score returned no maps"
        else:
            assert scores.maps is None, "score returned maps but localizes is False"
        for name, m in [("maps", scores.maps),
                        *((f"extra_maps[{k!r}]", v) for k, v in scores.extra_maps.items())]:
            if m is None:
                continue
            m = np.asarray(m)
            assert m.shape == want, f"{name} of shape {m.shape}, expected {want}"
            assert np.isfinite(m).all(), f"{name} hold NaN or infinite values"
        undeclared = sorted(set(scores.extra_maps) - set(cls.extra_map_protocols))
        assert not undeclared, f"extra maps {', '.join(undeclared)} not declared in " \
            "extra_map_protocols"
        return f"maps {want}" if cls.localizes else "no maps (localizes is False)"

    def metrics() -> str:
        m, _ = score_metrics(state["test"], state["scores"], state["spec"].cls.extra_map_protocols)
        state["metrics"] = m
        return ", ".join(f"{k} {v:.3f}" for k, v in sorted(m.items())
                         if isinstance(v, float) and not math.isnan(v))

    def higher_is_anomalous() -> str:
        image, labels = np.asarray(state["scores"].image), state["test"].labels
        bad, good = image[labels == 1].mean(), image[labels == 0].mean()
        assert bad > good, (f"obvious anomalies score lower on average ({bad:.4g}) than normal "
                            f"images ({good:.4g}): a higher score must mean more anomalous")
        return f"mean {bad:.4g} (anomalous) > {good:.4g} (normal)"

    def determinism() -> str:
        _, _, again, _ = fit_score(seed)
        first = state["scores"]
        assert _same(np.asarray(again.image), np.asarray(first.image)), \
            "the same seed gave different image scores"
        if first.maps is not None and again.maps is not None:
            assert _same(np.asarray(again.maps), np.asarray(first.maps)), \
                "the same seed gave different maps"
        return f"seed {seed} twice: same scores"

    def pickling() -> str:
        spec: MethodSpec = state["spec"]
        back = cloudpickle.loads(cloudpickle.dumps(spec))
        assert back.config(data.family, state["overrides"]) == state["config"], \
            "the unpickled spec resolves another config"
        method = spec.build(data.family, state["overrides"])
        again = cloudpickle.loads(cloudpickle.dumps(method))
        assert again.config == method.config, "an unpickled method has another config"
        return "spec and method survive cloudpickle (as they travel to workers)"

    def provenance() -> str:
        method: Method = state["method"]
        prov = method.provenance()
        assert isinstance(prov, dict), f"provenance() returned {type(prov).__name__}"
        missing = {"expert", "checkpoint_policy"} - set(prov)
        assert not missing, f"provenance() lacks {', '.join(sorted(missing))}"
        json.dumps(prov)
        versions = prov.get("versions", {})
        assert isinstance(versions, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in versions.items()), \
            "provenance()['versions'] is not a dict of package -> version strings"
        info = method.fit_info()
        assert isinstance(info, dict) and all(isinstance(v, (int, float))
                                              for v in info.values()), \
            "fit_info() is not a dict of numbers"
        return f"expert={prov['expert']}, checkpoint_policy={prov['checkpoint_policy']}"

    run.run("resolves", resolve)
    run.run("declarations", declarations, needs=["resolves"])
    run.run("configs", configs, needs=["declarations"])
    run.run("config round trip", round_trip, needs=["configs"])
    run.run("fit", fit, needs=["configs"])
    run.run("image scores", image_scores, needs=["fit"])
    run.run("maps", maps, needs=["image scores"])
    run.run("metrics", metrics, needs=["maps"])
    run.run("higher = more anomalous", higher_is_anomalous, needs=["image scores"])
    run.run("same seed, same scores", determinism, needs=["image scores"])
    def in_setting(setting: str, protocol: DatasetProtocol, task: str, shots: int | None = None
                   ) -> tuple[Method, Prepared, Scores]:
        spec: MethodSpec = state["spec"]
        method = spec.build(protocol.family, state["overrides"])
        job = Job.make("check", spec.name, protocol.name, task, seed, setting=setting,
                       shots=shots)
        data = prepare(job, protocol, None, method.input_spec())
        ctx = RunContext(seed=seed, family=protocol.family)
        with _global_rng_kept(), contextlib.redirect_stdout(io.StringIO()):
            seed_everything(seed)
            method.fit(data.train, ctx)
            scores = method.score(data.test, ctx)
        image = np.asarray(scores.image)
        assert image.shape == (len(data.test),) and np.isfinite(image).all(), \
            f"{setting}: not one finite score per test image"
        return method, data, scores

    def unified() -> str:
        _, data, scores = in_setting(UNIFIED, SyntheticCategories(), UNIFIED_TASK)
        per = category_metrics(data, scores, state["spec"].cls.extra_map_protocols, None)
        assert set(per) == {"dark", "light"}, f"per-category metrics of {sorted(per)}"
        return (f"one model on {len(data.train)} images of 2 categories; image AUROC "
                + ", ".join(f"{c} {m['image_auroc']:.3f}" for c, m in per.items()))

    def few_shot() -> str:
        k = max(1, int(state["spec"].cls.min_shots))  # the fewest images it declares to fit
        _, data, _ = in_setting(FEW_SHOT, data_protocol, "blobs", shots=k)
        assert len(data.train) == k, f"{len(data.train)} training images for k={k}"
        return f"fits {k} training image(s) (k={k}, its min_shots) and scores every test image"

    def corrupted_setting() -> str:
        method: Method = state["method"]
        test: TaskData = state["test"]
        before = test.images.clone()
        ctx = RunContext(seed=seed, family=data.family)
        with _global_rng_kept(), contextlib.redirect_stdout(io.StringIO()):
            for name in corruptions.CORRUPTIONS:
                copy = corruptions.corrupted(test, name, corruptions.SEVERITIES[-1], seed)
                image = np.asarray(method.score(copy, ctx).image)
                assert image.shape == (len(test),) and np.isfinite(image).all(), \
                    f"{name}: not one finite score per corrupted test image"
            again = method.score(test, ctx)
        assert torch.equal(test.images, before), "corrupting the test set changed its images"
        assert _same(np.asarray(again.image), np.asarray(state["scores"].image)), \
            "scoring corrupted copies changed the clean test images' scores"
        return (f"{len(corruptions.CORRUPTIONS)} corruptions at severity "
                f"{corruptions.SEVERITIES[-1]}: finite scores; the clean scores unchanged")

    data_protocol = data
    run.run("pickling", pickling, needs=["configs"])
    run.run("provenance", provenance, needs=["fit"])
    run.run("unified setting", unified, needs=["image scores"])
    run.run("few-shot setting", few_shot, needs=["image scores"])
    run.run("corrupted setting", corrupted_setting, needs=["image scores"])
    if raise_on_failure:
        run.report.raise_for_failures()
    return run.report


# ------------------------------------------------------------------------------ datasets
DatasetTarget = str | type[DatasetProtocol] | DatasetProtocol


def _protocol(target: DatasetTarget) -> DatasetProtocol:
    if isinstance(target, str):
        return DATASETS.get(target)
    name = target.__name__ if isinstance(target, type) else type(target).__name__
    return as_protocol(name, target)


def check_dataset(target: DatasetTarget, *, root: str | Path | None = None,
                  task: str | None = None, size: int = 32, seed: int = 0,
                  raise_on_failure: bool = True) -> CheckReport:
    """Check a dataset protocol against the contract (``datasets/base.py``) on one task.

    Args:
        target: a registered name (plugins, ``folder:/abs/path`` and ``package.module:Class``
            names included), a :class:`~bench.datasets.base.DatasetProtocol` subclass or
            instance.
        root: the data root (None: the default one; embedded datasets need none).
        task: the task to load (default: the first).
        size: the square size asked for (resized to ``size + 8``, centre-cropped to ``size``).
        raise_on_failure: raise an ``AssertionError`` listing the failed checks.

    Checks: the declarations (``name``, ``family``, ``default_size``, ``has_masks``,
    ``embedded``, ``info``); the task list; the data is available; an unknown task is refused
    with a one-line error; ``load`` gives normal-only training images and a test split with
    normal and anomalous ones, RGB ``uint8`` at the size and crop asked, one id per image; masks
    (when there are) of the images' size, in [0, 1], empty on normal images; the same seed
    loads the same data; the protocol pickles.
    """
    label = target if isinstance(target, str) else getattr(target, "__name__",
                                                           type(target).__name__)
    run = _Runner(f"dataset {label}")
    state: dict[str, Any] = {}
    base = Path(root) if root is not None else None
    spec = InputSpec(size=size + 8, crop=size)

    def resolve() -> str:
        state["ds"] = ds = _protocol(target)
        return f"{type(ds).__module__}.{type(ds).__qualname__}"

    def declarations() -> str:
        ds: DatasetProtocol = state["ds"]
        problems = protocol_problems(ds)
        assert not problems, "; ".join(problems)
        return f"family {ds.family!r}, default size {ds.default_size}, " \
            f"masks {'yes' if ds.has_masks else 'no'}"

    def available() -> str:
        ds: DatasetProtocol = state["ds"]
        try:
            ds.check_available(base)
            tasks = ds.tasks_in(base)
        except BenchError as exc:
            raise AssertionError(f"{exc} (give the data root)") from None
        assert isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks), \
            f"tasks_in() gave {tasks!r}, not a non-empty list of names"
        assert len(set(tasks)) == len(tasks), "tasks_in() repeats a task"
        state["task"] = chosen = task if task is not None else tasks[0]
        assert chosen in tasks, f"task {chosen!r} is not one of {', '.join(tasks)}"
        ds.check_tasks(base, [chosen])
        return f"{len(tasks)} task(s): {', '.join(tasks[:5])}{', …' if len(tasks) > 5 else ''}"

    def unknown_task() -> str:
        ds: DatasetProtocol = state["ds"]
        bad = "no such task/.."
        try:
            ds.check_task(bad)
        except UsageError:
            return "refused with a UsageError"
        raise AssertionError(f"check_task({bad!r}) accepted it: raise UsageError naming the "
                             "tasks")

    def load() -> str:
        ds: DatasetProtocol = state["ds"]
        out = ds.load(state["task"], base, seed, spec)
        assert isinstance(out, tuple) and len(out) == 2 and all(
            isinstance(x, TaskData) for x in out), "load() must return (train, test) TaskData"
        train, test = out
        state.update(train=train, test=test)
        assert len(train) and len(test), "an empty split"
        assert not train.labels.any(), "the training split holds anomalous images"
        assert set(np.unique(test.labels)) == {0, 1}, \
            f"test labels {sorted(set(test.labels.tolist()))}: it needs normal and anomalous " \
            "images"
        for name, split in (("train", train), ("test", test)):
            shape = tuple(split.images.shape[1:])
            assert shape == (3, size, size), (f"{name} images of shape {shape}, asked "
                                              f"(3, {size}, {size}): resize to spec.size, then "
                                              "centre-crop to spec.crop, in RGB")
            assert len(split.ids) == len(split), f"{name}: not one id per image"
        return (f"task {state['task']!r}: {len(train)} train, {len(test)} test "
                f"({int(test.labels.sum())} anomalous)")

    def masks() -> str:
        ds: DatasetProtocol = state["ds"]
        test: TaskData = state["test"]
        if test.masks is None:
            assert not state["train"].has_masks, "train has masks but test has none"
            return "none" + (" in this data (has_masks is True)" if ds.has_masks else "")
        m = test.masks.numpy()
        assert m.shape == (len(test), size, size), f"masks of shape {m.shape}"
        assert np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1, "mask values outside [0, 1]"
        assert not m[test.labels == 0].any(), "normal images with a non-empty mask"
        assert ds.has_masks, "load() gives masks but has_masks is False"
        return f"{size}x{size} in [0, 1], empty on normal images"

    def determinism() -> str:
        ds: DatasetProtocol = state["ds"]
        train, test = ds.load(state["task"], base, seed, spec)
        for name, a, b in (("train", train, state["train"]), ("test", test, state["test"])):
            assert torch.equal(a.images, b.images), f"{name} images differ between two loads"
            assert np.array_equal(a.labels, b.labels), f"{name} labels differ between two loads"
        return f"seed {seed} twice: same images and labels"

    def pickling() -> str:
        ds: DatasetProtocol = state["ds"]
        back = cloudpickle.loads(cloudpickle.dumps(ds))
        assert type(back) is type(ds), "unpickled as another type"
        assert back.tasks_in(base) == ds.tasks_in(base), "the unpickled protocol has other tasks"
        return "survives cloudpickle (as it travels to workers)"

    run.run("resolves", resolve)
    run.run("declarations", declarations, needs=["resolves"])
    run.run("data available", available, needs=["declarations"])
    run.run("unknown task refused", unknown_task, needs=["declarations"])
    run.run("load", load, needs=["data available"])
    run.run("masks", masks, needs=["load"])
    run.run("same seed, same data", determinism, needs=["load"])
    run.run("pickling", pickling, needs=["data available"])
    if raise_on_failure:
        run.report.raise_for_failures()
    return run.report
