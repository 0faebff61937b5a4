"""bench's feature baselines against anomalib's, on the same data and weights: fit + score time
and peak memory, and the ratios, from one run of both sides.

The peer setup of docs/zoo.md's comparison: the embedded ``textures`` photographs (``brick``),
40 training and 40 test images at 128 px, a random ResNet-18 (``resnet18:random:0``, the same
weights loaded into both), the CPU, 2 torch threads. Pairs (``--pairs``): STFPM (10 epochs),
PaDiM, PatchCore. anomalib's side is ``anomalib.<Model>`` (the anomalib plugin: anomalib 2.7's
own torch model and loss, without its Lightning engine, so its figures are a lower bound of
anomalib's own).

Each side runs in a fresh process (its own peak RSS, the same glibc allocator settings as a
``bench run`` job), the two sides of a pair back to back (``--repeat N``: alternating, N runs
each, the ratios from each side's fastest), so that both see the same load.

    python benchmarks/anomalib_cpu.py                         # all three pairs
    python benchmarks/anomalib_cpu.py --pairs stfpm --epochs 10 --threads 2 --size 128

Run from the repository root, with the anomalib extra installed. Prints one line per side
(fit s, score s, peak RSS, its growth during fit + score, image AUROC) and per pair the speed
ratio (anomalib's fit + score time / bench's) and the memory ratio (bench's peak growth /
anomalib's).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: pair name -> (bench's method, anomalib's method, overrides of both)
PAIRS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "stfpm": ("stfpm_r18", "anomalib.Stfpm", {"epochs": 10}),
    "padim": ("padim_r18", "anomalib.Padim", {}),
    "patchcore": ("patchcore", "anomalib.Patchcore", {}),
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One side of a pair, in this process: load, fit, score; the figures as a dict."""
    import torch

    from bench.core.environment import retain_freed_memory
    from bench.core.metrics import image_auroc
    from bench.datasets.base import InputSpec
    from bench.datasets.textures import Textures, TextureSettings
    from bench.methods import METHODS
    from bench.methods.base import RunContext

    torch.set_num_threads(args.threads)
    retain_freed_memory()  # as every bench run job does
    data = Textures(TextureSettings(crop=160, n_train=args.train, n_test_normal=args.test // 2,
                                    n_test_anomalous=args.test - args.test // 2))
    train, test = data.load("brick", None, 0, InputSpec(size=args.size))
    overrides = {"backbone": "resnet18", "backbone_weights": "random",
                 **json.loads(args.overrides)}
    if args.child.startswith("anomalib."):
        overrides.pop("image_size", None)
    method = METHODS.get(args.child).build("textures", overrides)
    ctx = RunContext(device=torch.device("cpu"), seed=0)
    before = _rss_mb()
    t0 = time.perf_counter()
    method.fit(train, ctx)
    t1 = time.perf_counter()
    scores = method.score(test, ctx)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": args.child, "fit_s": t1 - t0, "score_s": t2 - t1, "total_s": t2 - t0,
            "peak_mb": peak, "growth_mb": peak - before,
            "image_auroc": float(image_auroc(test.labels, scores.image))}


def run_side(name: str, overrides: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name,
           "--overrides", json.dumps(overrides), "--train", str(args.train),
           "--test", str(args.test), "--size", str(args.size), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {name:<20} fit {result['fit_s']:6.2f} s  score {result['score_s']:5.2f} s  "
          f"peak RSS {result['peak_mb']:6.0f} MiB (+{result['growth_mb']:5.0f} in fit + score)  "
          f"image AUROC {result['image_auroc']:.3f}", flush=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="stfpm,padim,patchcore",
                    help=f"comma-separated, from: {', '.join(PAIRS)}")
    ap.add_argument("--train", type=int, default=40)
    ap.add_argument("--test", type=int, default=40)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10, help="STFPM's epochs")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each side, alternating (bench, anomalib, bench, ...); the "
                         "ratios use each side's fastest run")
    ap.add_argument("--bench-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override of bench's side only (repeatable; a JSON value or "
                         "a string), e.g. teacher_cache=off")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return {}
    names = [p.strip() for p in args.pairs.split(",") if p.strip()]
    unknown = [p for p in names if p not in PAIRS]
    if unknown:
        ap.error(f"unknown pair(s) {', '.join(unknown)}; choose from {', '.join(PAIRS)}")
    bench_only: dict[str, Any] = {}
    for item in args.bench_set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--bench-set {item!r}: expected KEY=VALUE")
        try:
            bench_only[key] = json.loads(value)
        except json.JSONDecodeError:
            bench_only[key] = value
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{args.train} train + {args.test} test images (textures/brick) at {args.size} px, "
          f"random ResNet-18, CPU, {args.threads} threads; load average {load} at the start",
          flush=True)
    results: dict[str, Any] = {"settings": vars(args) | {"json": None}, "pairs": {}}
    for pair in names:
        ours, theirs, overrides = PAIRS[pair]
        if pair == "stfpm":
            overrides = {**overrides, "epochs": args.epochs}
        print(pair, flush=True)
        ours_runs, theirs_runs = [], []
        for _ in range(args.repeat):
            ours_runs.append(run_side(ours, {**overrides, **bench_only}, args))
            theirs_runs.append(run_side(theirs, overrides, args))
        a = min(ours_runs, key=lambda r: r["total_s"])
        b = min(theirs_runs, key=lambda r: r["total_s"])
        speed = b["total_s"] / a["total_s"]
        memory = a["growth_mb"] / max(b["growth_mb"], 1.0)
        print(f"  => bench {speed:.2f}x faster (fit + score); bench's peak growth "
              f"{memory:.2f}x anomalib's, peak RSS {a['peak_mb'] / b['peak_mb']:.2f}x", flush=True)
        results["pairs"][pair] = {"bench": ours_runs, "anomalib": theirs_runs,
                                  "speedup": speed, "memory_ratio": memory}
    with open("/proc/loadavg") as f:
        print(f"load average {f.read().split()[0]} at the end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
