"""MKD's speed on a GPU for a CIFAR-10-sized class and an MVTec-sized category, and what the
paper grid would cost at that speed.

Measures, through :func:`bench.perf.measure.measure_size` (the code path of ``bench perf``):

- a CIFAR-10-sized class: 5,000 training images at 224 px (the preset resizes to 256 and crops
  224), expert cache off and on, scoring;
- an MVTec-sized category: 300 training images at 128 px, the same plus localization;
- probes at the grid's other input sizes (32 px: MNIST / Fashion-MNIST; 256 px: BrainMRI);
- at each size, the cost of one evaluation during training (``eval_every``) with the test
  images' expert activations cached and without.

Synthetic images and a random expert (ImageNet weights cost the same to run). Then it projects
the MKD jobs of the ``paper`` suite (``mkd`` and ``mkd_single``, every dataset, task and seed)
from the measured rates; the assumptions are printed with the result.

    python benchmarks/mkd_cuda.py                           # CUDA (refuses without it)
    python benchmarks/mkd_cuda.py --amp --channels-last     # bf16 autocast, NHWC
    python benchmarks/mkd_cuda.py --device auto             # falls back to the CPU, warning
    python benchmarks/mkd_cuda.py --device cpu --cifar-images 32 --mvtec-images 32 \\
        --test-images 16 --probe-images 16 --epochs 2       # a small run on the CPU

Run from the repository root. ``--budget-s`` (480) stops measuring when the time is spent: the
settings left out are projected from the nearest measured size, scaled by pixel count.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core import environment as env
from bench.methods import METHODS
from bench.methods.base import RunContext
from bench.methods.mkd import default_budget_mb, tap_bytes
from bench.perf.measure import PerfOptions, measure_size, synthetic_task

#: when a manifest has no per-task count: the assumption, said in the output
ASSUMED = {
    "mnist": "train: 60,000 / 10 = 6,000 per digit (the manifest has totals only)",
    "retinal_oct": "train: 26,315 NORMAL images, the count published with Kermany et al.'s "
                   "OCT2017 release (the manifest leaves it unconfirmed)",
}


@dataclass(frozen=True)
class Rates:
    """Measured images/s at one size."""

    size: int
    train_off: float
    train_on: float
    fill: float
    score: float
    eval_first: float
    eval_cached: float
    localize: float | None

    def scaled(self, size: int) -> Rates:
        """The rates at ``size``, assuming cost grows with the pixel count."""
        k = (self.size / size) ** 2
        return Rates(size, self.train_off * k, self.train_on * k, self.fill * k, self.score * k,
                     self.eval_first * k, self.eval_cached * k,
                     None if self.localize is None else self.localize * k)


def task_sizes(dataset: str, task: str) -> tuple[int, int, bool]:
    """(training images, test images, masks) of one task, from the shipped manifests."""
    from bench.datasets.stored import manifest

    c = manifest(dataset).get("counts", {})
    if dataset in ("mnist", "fashion_mnist", "cifar10"):
        train = c.get(f"train/{task}") or c["train"] // 10
        return int(train), int(c["test"]), False
    if dataset == "mvtec":
        test = c[f"{task}/test/good"] + c[f"{task}/test/defective"]
        return int(c[f"{task}/train/good"]), int(test), True
    if dataset == "retinal_oct":
        test = sum(v for k, v in c.items() if k.startswith("test/") and v)
        return int(c.get("train/NORMAL") or 26315), int(test), False
    if dataset == "headct":  # REFERENCE §4: 10 normals held out for the test set
        return c["normal"] - 10, 10 + c["hemorrhage"], False
    if dataset == "brainmri":
        return c["no"] - 10, 10 + c["yes"], False
    raise ValueError(f"no sizes known for {dataset}")


def measure_eval(size: int, n_test: int, args: argparse.Namespace,
                 device: torch.device) -> tuple[float, float]:
    """img/s of an evaluation during training: the first (fills the test-set cache), a later
    one (cached expert activations: the cloner only)."""
    settings = {"expert_weights": "random", "image_size": size, "epochs": 3, "eval_every": 1,
                "amp": args.amp, "channels_last": args.channels_last, "compile": args.compile}
    method: Any = METHODS.get("mkd").build("", settings)
    test = synthetic_task(n_test, size, seed=2)
    ctx = RunContext(device=device, seed=0, eval_data=test, evaluate=lambda data, s: {})
    method.fit(synthetic_task(min(64, n_test), size, seed=3), ctx)
    info = method.eval_info_
    return n_test / info[0]["seconds"], n_test / min(i["seconds"] for i in info[1:])


def measure(size: int, n_train: int, args: argparse.Namespace, device: torch.device,
            localize: bool) -> tuple[Rates, dict[str, Any]]:
    options = PerfOptions(sizes=(size,), images=n_train, test_images=args.test_images,
                          epochs=args.epochs, device=str(device), amp=args.amp,
                          channels_last=args.channels_last, compile=args.compile,
                          loop_images=0, localize=localize)
    r = measure_size("mkd", size, options, device,
                     step=lambda s: print(f"  {s}", flush=True))
    first, cached = measure_eval(size, args.test_images, args, device)
    on = r["train_cache_on"]
    rates = Rates(size=size, train_off=r["train_cache_off"]["img_s"], train_on=on["img_s"],
                  fill=on["cached_images"] / max(on["cache_fill_s"], 1e-9),
                  score=r["score_img_s"], eval_first=first, eval_cached=cached,
                  localize=r.get("localization_img_s"))
    return rates, {**r, "eval_first_img_s": first, "eval_cached_img_s": cached}


def project(rates: dict[int, Rates], budget_bytes: int, dtype: torch.dtype
            ) -> tuple[list[dict[str, Any]], list[str]]:
    """Seconds of every MKD job of the paper suite at the measured rates."""
    from bench.datasets import DATASETS
    from bench.run.select import select_jobs

    _, jobs = select_jobs("paper", check_data=False)
    notes: set[str] = set()
    rows = []
    for job in jobs:
        if METHODS.get(job.method).cls.__name__ != "MKD":
            continue
        family = DATASETS.get(job.dataset).family
        cfg: Any = METHODS.get(job.method).config(family, job.overrides_dict)
        size = int(cfg.crop or cfg.image_size or 32)
        n_train, n_test, masks = task_sizes(job.dataset, job.task)
        if job.dataset in ASSUMED:
            notes.add(f"{job.dataset}: {ASSUMED[job.dataset]}")
        rate = rates.get(size)
        if rate is None:
            near = min(rates, key=lambda s: abs(s - size))
            rate = rates[near].scaled(size)
            notes.add(f"{size} px not measured: rates of {near} px scaled by the pixel count")
        per_train = tap_bytes(cfg.trained_layers, (size, size), dtype)
        cached = min(n_train, budget_bytes // per_train)
        fill_s = cached / rate.fill
        epoch_s = cached / rate.train_on + (n_train - cached) / rate.train_off
        evals = 0
        if cfg.eval_every:
            evals = sum(1 for e in range(cfg.epochs)
                        if e % cfg.eval_every == 0 or e == cfg.epochs - 1)
        left = budget_bytes - cached * per_train
        test_cached = min(n_test, max(0, left) // tap_bytes(cfg.scored_layers, (size, size),
                                                             dtype))
        later = test_cached / rate.eval_cached + (n_test - test_cached) / rate.score
        eval_s = (n_test / rate.eval_first + (evals - 1) * later) if evals else 0.0
        if masks and cfg.localization != "none" and rate.localize:
            final_s = n_test / rate.localize
        else:
            final_s = later if evals else n_test / rate.score
        rows.append({"method": job.method, "dataset": job.dataset, "task": job.task,
                     "seed": job.seed, "size": size, "train": n_train, "test": n_test,
                     "epochs": cfg.epochs, "evaluations": evals,
                     "seconds": fill_s + cfg.epochs * epoch_s + eval_s + final_s})
    return rows, sorted(notes)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda",
                    help="cuda (default; refuses without CUDA), cuda:K, cpu, or auto (CUDA "
                         "when present, else the CPU with a warning)")
    ap.add_argument("--cifar-images", type=int, default=5000)
    ap.add_argument("--cifar-size", type=int, default=224)
    ap.add_argument("--mvtec-images", type=int, default=300)
    ap.add_argument("--mvtec-size", type=int, default=128)
    ap.add_argument("--probe-sizes", default="32,256",
                    help="other sizes of the paper grid to measure (comma-separated; '' none)")
    ap.add_argument("--probe-images", type=int, default=1000)
    ap.add_argument("--test-images", type=int, default=512,
                    help="test images per scoring / evaluation measurement")
    ap.add_argument("--epochs", type=int, default=3,
                    help="training epochs per measurement (the first is not counted)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile expert and cloner")
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="stop starting new measurements after this many seconds")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = ap.parse_args(argv)
    if args.epochs < 2 or min(args.cifar_images, args.mvtec_images, args.probe_images,
                              args.test_images) < 2:
        ap.error("--epochs and every --*-images need at least 2")
    if args.device == "auto":
        if not torch.cuda.is_available():
            warnings.warn("CUDA is not available: measuring on the CPU, which says nothing "
                          "about GPU speed", stacklevel=1)
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available here. Run on a machine with "
                 "a GPU, or pass --device cpu (with small --*-images) or --device auto")
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.device.startswith("cuda") and (args.amp or args.channels_last):
        ap.error("--amp and --channels-last only act on CUDA")
    device = env.resolve_device(args.device)
    print(f"MKD on {device} ({env.device_name(device)}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), amp={args.amp}, "
          f"channels_last={args.channels_last}, compile={args.compile}", flush=True)
    budget = default_budget_mb(device) * 2**20  # what expert_cache=auto would use, per job
    dtype = torch.bfloat16 if (args.amp and device.type == "cuda") else torch.float32
    plan = [("CIFAR-10-sized class", args.cifar_size, args.cifar_images, False),
            ("MVTec-sized category", args.mvtec_size, args.mvtec_images, True)]
    for s in (int(x) for x in args.probe_sizes.split(",") if x.strip()):
        if s not in (args.cifar_size, args.mvtec_size):
            plan.append((f"probe at {s} px", s, args.probe_images, False))
    start = time.perf_counter()
    rates: dict[int, Rates] = {}
    figures: dict[str, Any] = {}
    for label, size, n, localize in plan:
        if rates and time.perf_counter() - start > args.budget_s:
            print(f"{label}: skipped, --budget-s {args.budget_s:.0f} spent", flush=True)
            continue
        print(f"{label}: {n} images at {size} px", flush=True)
        rate, raw = measure(size, n, args, device, localize)
        rates[size] = rate
        figures[label] = raw
        epoch_on = n / rate.train_on
        print(f"  train {rate.train_off:.1f} img/s (expert cache off), {rate.train_on:.1f} "
              f"img/s (on; {rate.train_on / rate.train_off:.1f}x): epoch {n / rate.train_off:.2f}"
              f" s / {epoch_on:.2f} s; cache fill {raw['train_cache_on']['cache_fill_s']:.2f} s",
              flush=True)
        loc = "" if rate.localize is None else f", localization {rate.localize:.1f} img/s"
        print(f"  score {rate.score:.1f} img/s; evaluation during training {rate.eval_first:.1f}"
              f" img/s (first), {rate.eval_cached:.1f} img/s (cached){loc}", flush=True)
    rows, notes = project(rates, budget, dtype)
    total = sum(r["seconds"] for r in rows)
    print(f"\nprojected paper grid, MKD jobs ({len(rows)}: mkd and mkd_single, every dataset, "
          f"task and seed), one job at a time on this device:")
    by_dataset: dict[str, list[float]] = {}
    for r in rows:
        by_dataset.setdefault(r["dataset"], []).append(r["seconds"])
    for name, secs in sorted(by_dataset.items()):
        print(f"  {name:<14} {len(secs):>3} jobs  {_duration(sum(secs) / len(secs)):>9} per job"
              f"  {_duration(sum(secs)):>9}")
    print(f"  {'total':<14} {len(rows):>3} jobs  {'':>9}          {_duration(total):>9}"
          f"  ({total / 3600:.1f} GPU-hours; divide by the GPUs running jobs side by side)")
    assumptions = [
        "epochs, eval_every, input size and layers from each job's resolved config (presets); "
        "every evaluation scores the whole test set; the last score also localizes on MVTec",
        f"expert cache budget per job: {budget / 2**30:.1f} GiB (expert_cache=auto on this "
        "device); what does not fit is recomputed per batch; test-set activations cached from "
        "what is left",
        "mkd_single costs as much as mkd (same cloner depth; its cache is smaller)",
        "data loading and decoding, record writing and process start-up are not included",
        "training and test sets of the sizes in datasets/manifests (task_sizes())",
        *notes,
    ]
    print("assumptions:\n" + "\n".join(f"  - {a}" for a in assumptions))
    print(f"measured in {time.perf_counter() - start:.0f} s")
    result = {"environment": {**env.host_info(device), "versions": env.versions(),
                              "git": env.git_commit()},
              "options": {k: str(v) if isinstance(v, Path) else v
                          for k, v in vars(args).items()},
              "measured": figures, "rates": {str(k): v.__dict__ for k, v in rates.items()},
              "projection": {"jobs": rows, "total_s": total, "assumptions": assumptions}}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=_jsonable) + "\n",
                             encoding="utf-8")
        print(f"wrote {args.json}")
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    main()
