"""Throughput and memory of MKD, measured through the method's own code paths.

For every input size: training images/s with the expert cache off and on (steady state: the
epochs after the first, so the one-off cache fill is reported apart), scoring images/s (no
gradients) and localization images/s (batched input gradients), and the peak memory of each
block. At one size (128 px by default) the batched localization is also timed against a loop
that calls it on one image at a time, as the official code does.

The images are synthetic (smooth noise with a bright square on half of them): throughput does
not depend on the content. The expert is random, as ImageNet weights cost the same to run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psutil
import torch

from bench import environment as env
from datasets.base import TaskData
from methods.base import RunContext

StepFn = Callable[[str], None]


@dataclass(frozen=True)
class PerfOptions:
    """What to measure. ``images=None``: 256 on CUDA, 16 on the CPU."""

    sizes: tuple[int, ...] = (32, 128, 224)
    images: int | None = None
    batch_size: int = 64
    epochs: int = 3
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _method(size: int, options: PerfOptions, **overrides: Any) -> Any:
    from methods import METHODS

    settings = {"expert_weights": "random", "image_size": size, "epochs": options.epochs,
                "batch_size": options.batch_size, "amp": options.amp,
                "channels_last": options.channels_last, "eval_every": 0,
                "localization": "gradients", **options.extra, **overrides}
    return METHODS.get("mkd").build("", settings)


def _train(size: int, data: TaskData, options: PerfOptions, device: torch.device,
           cache: str) -> tuple[dict[str, float], Any]:
    """Fit with the expert cache ``on`` or ``off``; steady img/s excludes the first epoch."""
    stamps: list[float] = []

    def stamp(done: int, total: int) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    method = _method(size, options, expert_cache=cache)
    ctx = RunContext(device=device, seed=options.seed, progress=stamp)
    start = time.perf_counter()
    method.fit(data, ctx)
    steady = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    out = {"img_s": len(data) / steady if len(stamps) > 1 else float("nan"),
           "epoch_s": steady, "first_epoch_s": stamps[0] - start,
           "cached_images": float(method.cache_info_["cached"]),
           "cache_mb": float(method.cache_info_["cache_mb"]),
           "cache_fill_s": float(method.cache_info_["fill_s"])}
    return out, method


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def measure_size(size: int, options: PerfOptions, device: torch.device,
                 step: StepFn | None = None) -> dict[str, Any]:
    """Every figure for one input size."""
    n = options.n_images(device)
    data = synthetic_task(n, size, options.seed)
    plain = TaskData(data.images, data.labels, name=data.name)  # no masks: no localization
    say = step or (lambda s: None)
    out: dict[str, Any] = {"images": n}
    with env.PeakMemory(device=device) as mem_off:
        say(f"{size} px: training, expert cache off")
        off, _ = _train(size, data, options, device, "off")
    with env.PeakMemory(device=device) as mem_on:
        say(f"{size} px: training, expert cache on")
        on, method = _train(size, data, options, device, "on")
    ctx = RunContext(device=device, seed=options.seed)
    with env.PeakMemory(device=device) as mem_score:
        say(f"{size} px: scoring")
        score_s = _timed(lambda: method.score(plain, ctx), device)
    with env.PeakMemory(device=device) as mem_loc:
        say(f"{size} px: localization")
        loc_s = _timed(lambda: method.localize(data, ctx), device)
    out["train_cache_off"] = off
    out["train_cache_on"] = on
    out["train_speedup_cache"] = on["img_s"] / off["img_s"]
    out["score_img_s"] = n / score_s
    out["localization_img_s"] = n / loc_s
    out["peak_rss_mb"] = {"train_cache_off": mem_off.peak_rss_mb,
                          "train_cache_on": mem_on.peak_rss_mb,
                          "score": mem_score.peak_rss_mb, "localization": mem_loc.peak_rss_mb}
    if device.type == "cuda":
        out["peak_gpu_mb"] = {"train_cache_off": mem_off.peak_gpu_mb,
                              "train_cache_on": mem_on.peak_gpu_mb,
                              "score": mem_score.peak_gpu_mb, "localization": mem_loc.peak_gpu_mb}
    return out


def measure_loop(options: PerfOptions, device: torch.device,
                 step: StepFn | None = None) -> dict[str, Any]:
    """Batched localization against a loop over single images, at ``options.loop_size``."""
    size, n = options.loop_size, options.loop_images
    if step is not None:
        step(f"{size} px: batched localization vs a per-image loop ({n} images)")
    data = synthetic_task(n, size, options.seed)
    method = _method(size, options, epochs=1)
    ctx = RunContext(device=device, seed=options.seed)
    method.fit(data, ctx)
    method.localize(data.subset([0]), ctx)  # warm-up
    batched = _timed(lambda: method.localize(data, ctx), device)
    single = [data.subset([i]) for i in range(n)]
    looped = _timed(lambda: [method.localize(one, ctx) for one in single], device)
    return {"size": size, "images": n, "batched_img_s": n / batched, "loop_img_s": n / looped,
            "speedup": looped / batched}


def mkd_perf(options: PerfOptions, step: StepFn | None = None) -> dict[str, Any]:
    """All figures, as a JSON-ready dict."""
    device = env.resolve_device(options.device)
    result: dict[str, Any] = {
        "baseline_rss_mb": psutil.Process().memory_info().rss / 2**20,
        "benchmark": "mkd", "created": env.now_iso(), "device": str(device),
        "device_name": env.device_name(device), "threads": torch.get_num_threads(),
        "versions": env.versions(), "git": env.git_commit(),
        "options": {**asdict(options), "sizes": list(options.sizes)},
        "sizes": {},
    }
    for size in options.sizes:
        result["sizes"][str(size)] = measure_size(size, options, device, step)
    if options.loop_images > 0:
        result["loop"] = measure_loop(options, device, step)
    return result


def summary_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """One printable row per size."""
    rows = []
    for size, r in result["sizes"].items():
        off, on = r["train_cache_off"], r["train_cache_on"]
        mem = r.get("peak_gpu_mb") or r["peak_rss_mb"]
        rows.append({
            "px": size,
            "train": f"{off['img_s']:.1f}",
            "train+cache": f"{on['img_s']:.1f}",
            "gain": f"{r['train_speedup_cache']:.1f}x",
            "fill s": f"{on['cache_fill_s']:.2f}",
            "score": f"{r['score_img_s']:.1f}",
            "localize": f"{r['localization_img_s']:.1f}",
            "peak MiB": f"{max(v for v in mem.values() if v is not None):.0f}",
        })
    return rows

