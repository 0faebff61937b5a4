"""Throughput and memory of any registered method, measured through its own ``fit``/``score``.

One code path for every method, run as the method's :class:`~bench.methods.base.PerfProfile`
declares (MKD: two training variants, its expert cache off and on). For every method and input
size:

- **fit** images/s: for the methods trained in epochs, the steady state (the epochs after the
  first, so one-off work such as MKD's cache fill or a ``torch.compile`` is left out and
  reported apart); for the others (PCA, kernels, feature statistics, memory banks), training
  images over the whole ``fit``, network construction included;
- **score** images/s on test images without masks (no maps needed);
- **localization** images/s on test images with masks (what a pixel-metric run costs), for the
  methods that localize;
- the peak memory of each block (process RSS; on CUDA also the allocator's peak).

At one size (128 px by default) each localizing method's batched ``score`` is also timed against
a loop that scores one image at a time, and against the original code's procedure where the
method declares one (MKD: per image forward, ``backward`` with every parameter's gradient,
``numpy`` post-processing; :meth:`bench.methods.mkd.MKD.localize_official_loop`).

The images are synthetic (smooth noise with a bright square on half of them): throughput does
not depend on the content. Pretrained networks get random weights, which cost the same to run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import psutil
import torch

from bench.core import environment as env
from bench.core.errors import UsageError
from bench.datasets.base import TaskData
from bench.methods import METHODS
from bench.methods.base import Method, PerfProfile, RunContext

StepFn = Callable[[str], None]

#: config switches that ``PerfOptions`` turns on by name (for the methods that declare them in
#: ``PerfProfile.flags``)
FLAGS = ("amp", "channels_last", "compile")


@dataclass(frozen=True)
class PerfOptions:
    """What to measure. ``images=None``: 256 on CUDA, 16 on the CPU (training images; also the
    test images unless ``test_images`` is given); ``batch_size=None``: the method's own;
    ``localize=False`` skips the localization figure; ``extra``: config overrides (``--set``),
    each given to the methods that have the field."""

    sizes: tuple[int, ...] = (32, 128, 224)
    images: int | None = None
    test_images: int | None = None
    localize: bool = True
    batch_size: int | None = None
    epochs: int = 3
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    loop_size: int = 128
    loop_images: int = 8
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def n_images(self, device: torch.device) -> int:
        if self.images is not None:
            return self.images
        return 256 if device.type == "cuda" else 16


def synthetic_task(n: int, size: int, seed: int = 0) -> TaskData:
    """``n`` smooth uint8 images of ``size``², a bright square (with its mask) on every other."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.2, 0.8, size=(n, 1, max(1, size // 8), max(1, size // 8)))
    images = np.kron(coarse, np.ones((1, 1, 8, 8)))[:, :, :size, :size]
    images = np.clip(images + rng.normal(0, 0.03, size=(n, 1, size, size)), 0, 1)
    masks = np.zeros((n, size, size), dtype=np.float32)
    labels = np.arange(n) % 2
    side = max(2, size // 6)
    for i in np.flatnonzero(labels):
        y, x = rng.integers(0, size - side, size=2)
        images[i, :, y:y + side, x:x + side] = 0.95
        masks[i, y:y + side, x:x + side] = 1.0
    u8 = np.rint(np.repeat(images, 3, axis=1) * 255).astype(np.uint8)
    return TaskData(torch.from_numpy(u8), labels, torch.from_numpy(masks), name=f"perf/{size}")


# ------------------------------------------------------------------------------- settings


def _fields(method: str) -> set[str]:
    return set(METHODS.get(method).fields())


def _profile(method: str) -> PerfProfile:
    """What ``method`` declares about how it is measured."""
    return METHODS.get(method).cls.perf_profile


def resolve_methods(patterns: Sequence[str]) -> list[str]:
    """Registered names matching ``patterns`` (fnmatch); ``all``: the demo suite's methods."""
    from bench.run.suites import load_suite

    out: list[str] = []
    for pattern in patterns:
        found = (load_suite("demo").method_names() if pattern == "all"
                 else METHODS.names(pattern))
        if not found:
            raise UsageError(f"no method matches {pattern!r}; known: "
                             f"{', '.join(METHODS.names())} (or 'all')")
        out += [m for m in found if m not in out]
    return out


def check_options(methods: Sequence[str], options: PerfOptions, device: torch.device) -> None:
    """Refuse what cannot be measured: a flag a method lacks, an ``extra`` key that no method
    has, input sizes below 32 px. (``amp`` and ``channels_last`` act on the CPU and CUDA.)"""
    if not options.sizes or min(options.sizes) < 32 or options.loop_size < 32:
        raise UsageError("sizes need at least 32 px (VGG-16 and the ResNets halve five times)")
    for flag in FLAGS:
        if not getattr(options, flag):
            continue
        name = "--" + flag.replace("_", "-")
        lacking = [m for m in methods if flag not in _profile(m).flags]
        if lacking:
            have = [m for m in METHODS.names() if flag in _profile(m).flags]
            raise UsageError(f"{name}: {', '.join(lacking)} ha{'s' if len(lacking) == 1 else 've'}"
                             f" no {flag!r} option; it applies to: {', '.join(have) or 'none'}")
    known = set().union(*(_fields(m) for m in methods))
    unknown = sorted(set(options.extra) - known)
    if unknown:
        raise UsageError(f"--set {', '.join(unknown)}: no selected method has this field; "
                         f"valid fields: {', '.join(sorted(known))}")


def settings_for(method: str, size: int, options: PerfOptions,
                 **overrides: Any) -> dict[str, Any]:
    """The config overrides that run ``method`` at ``size`` px offline, as ``options`` ask."""
    have = _fields(method)
    out: dict[str, Any] = {"image_size": size}
    out.update({k: v for k, v in _profile(method).offline.items() if k in have})
    if "epochs" in have:
        out["epochs"] = options.epochs
    if "eval_every" in have:
        out["eval_every"] = 0
    if options.batch_size is not None and "batch_size" in have:
        out["batch_size"] = options.batch_size
    out.update({flag: True for flag in FLAGS if getattr(options, flag)})
    out.update({k: v for k, v in options.extra.items() if k in have})
    out.update({k: v for k, v in overrides.items() if k in have})
    return out


def train_variants(method: str) -> list[tuple[str, dict[str, Any]]]:
    """The fits to time, as the method declares them (one plain ``train`` fit by default)."""
    return [(label, dict(overrides))
            for label, overrides in _profile(method).train_variants.items()]


# ------------------------------------------------------------------------------ measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(method: str, settings: dict[str, Any]) -> Method:
    return METHODS.get(method).build("", settings)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _fit(method: str, settings: dict[str, Any], data: TaskData, options: PerfOptions,
         device: torch.device) -> tuple[dict[str, Any], Method]:
    """Fit once; steady img/s over the epochs after the first for the methods trained in epochs
    (an ``epochs`` field; their progress reports count epochs), else over the whole fit (other
    methods report other steps, e.g. PaDiM's position chunks)."""
    stamps: list[float] = []

    def stamp(done: int, total: int) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    model = _build(method, settings)
    ctx = RunContext(device=device, seed=options.seed, progress=stamp)
    start = time.perf_counter()
    model.fit(data, ctx)
    _sync(device)
    fit_s = time.perf_counter() - start
    n = len(data)
    out: dict[str, Any] = {"fit_s": fit_s}
    if len(stamps) > 1 and "epochs" in _fields(method):
        steady = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        out.update(img_s=n / steady, epoch_s=steady, first_epoch_s=stamps[0] - start,
                   basis="steady epochs")
    else:
        out.update(img_s=n / fit_s, epoch_s=None, first_epoch_s=None, basis="whole fit")
    out.update(model.fit_info())
    return out, model


def measure_size(method: str, size: int, options: PerfOptions, device: torch.device,
                 step: StepFn | None = None) -> dict[str, Any]:
    """Every figure of one method at one input size."""
    env.retain_freed_memory()
    n = options.n_images(device)
    data = synthetic_task(n, size, options.seed)
    n_test = options.test_images or n
    test = data if n_test == n else synthetic_task(n_test, size, options.seed + 1)
    plain = TaskData(test.images, test.labels, name=test.name)  # no masks: no maps needed
    say = step or (lambda s: None)
    out: dict[str, Any] = {"images": n, "test_images": n_test}
    rss: dict[str, float] = {}
    gpu: dict[str, float | None] = {}
    model = None
    for label, overrides in train_variants(method):
        env.release_memory()
        with env.PeakMemory(device=device) as mem:
            say(f"{method} {size} px: {label.replace('_', ' ')}")
            out[label], model = _fit(method, settings_for(method, size, options, **overrides),
                                     data, options, device)
        rss[label], gpu[label] = mem.peak_rss_mb, mem.peak_gpu_mb
    for label, (variant, baseline) in _profile(method).speedups.items():
        out[label] = out[variant]["img_s"] / out[baseline]["img_s"]
    assert model is not None
    fitted: Method = model
    ctx = RunContext(device=device, seed=options.seed)
    blocks = [("score", plain)]
    if options.localize and METHODS.get(method).cls.localizes:
        blocks.append(("localization", test))
    for label, part in blocks:
        if options.compile:  # the first call compiles the eval-mode graphs: not timed
            say(f"{method} {size} px: {label} (warm-up)")
            out[f"{label}_first_s"] = _timed(partial(fitted.score, part, ctx), device)
        env.release_memory()
        with env.PeakMemory(device=device) as mem:
            say(f"{method} {size} px: {label}")
            out[f"{label}_img_s"] = n_test / _timed(partial(fitted.score, part, ctx), device)
        rss[label], gpu[label] = mem.peak_rss_mb, mem.peak_gpu_mb
    out.setdefault("localization_img_s", None)
    out["peak_rss_mb"] = rss
    if device.type == "cuda":
        out["peak_gpu_mb"] = gpu
    return out


def measure_loop(method: str, options: PerfOptions, device: torch.device,
                 step: StepFn | None = None) -> dict[str, Any]:
    """Batched localization against a loop over single images, at ``options.loop_size``."""
    env.retain_freed_memory()
    size, n = options.loop_size, options.loop_images
    if step is not None:
        step(f"{method} {size} px: batched localization vs a per-image loop ({n} images)")
    data = synthetic_task(n, size, options.seed)
    model = _build(method, settings_for(method, size, options, epochs=1))
    ctx = RunContext(device=device, seed=options.seed)
    model.fit(data, ctx)
    model.score(data.subset([0]), ctx)  # warm-up
    if options.compile:
        model.score(data, ctx)
    batched = _timed(lambda: model.score(data, ctx), device)
    single = [data.subset([i]) for i in range(n)]
    looped = _timed(lambda: [model.score(one, ctx) for one in single], device)
    out: dict[str, Any] = {"size": size, "images": n, "batched_img_s": n / batched,
                           "loop_img_s": n / looped, "speedup": looped / batched}
    reference = _profile(method).reference_loop
    if reference is not None:
        official = getattr(model, reference)
        if step is not None:
            step(f"{method} {size} px: the official code's per-image procedure ({n} images)")
        slow = _timed(lambda: official(data), device)
        out.update(official_loop_img_s=n / slow, speedup_vs_official=slow / batched)
    return out


def environment(device: torch.device) -> dict[str, Any]:
    """What produced the figures: host, device, threads, package versions, git commit."""
    return {**env.host_info(device), "versions": env.versions(), "git": env.git_commit(),
            "retain_freed_memory": env.retain_freed_memory(),
            "baseline_rss_mb": psutil.Process().memory_info().rss / 2**20}


def perf(methods: Sequence[str], options: PerfOptions,
         step: StepFn | None = None) -> dict[str, Any]:
    """All figures of ``methods`` (registered names), as a JSON-ready dict."""
    device = env.resolve_device(options.device)
    check_options(methods, options, device)
    result: dict[str, Any] = {
        "benchmark": "perf", "created": env.now_iso(), "device": str(device),
        "device_name": env.device_name(device), "threads": torch.get_num_threads(),
        "environment": environment(device),
        "options": {**asdict(options), "sizes": list(options.sizes)},
        "methods": {},
    }
    for name in methods:
        entry: dict[str, Any] = {"sizes": {}}
        for size in options.sizes:
            entry["sizes"][str(size)] = measure_size(name, size, options, device, step)
        if options.loop_images > 0 and METHODS.get(name).cls.localizes:
            entry["loop"] = measure_loop(name, options, device, step)
        result["methods"][name] = entry
    return result
