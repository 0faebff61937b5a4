"""How long PatchCore's memory bank (greedy coreset) and nearest-neighbour search take on an
MVTec-sized input, and how much memory they need.

MVTec AD categories have 60–391 training images; at PatchCore's 224 px the layer2 grid is
28×28, so 240 images give 188,160 patches of 1,024 dimensions and a 10 % coreset of 18,816.

    python benchmarks/patchcore_cpu.py                             # random features, that shape
    python benchmarks/patchcore_cpu.py --backbone wide_resnet50_2  # the whole pipeline: random
                                                                   # WRN-50-2 on texture photos
    python benchmarks/patchcore_cpu.py --threads 1 --train 240 --test 100 --device cpu

Run from the repository root. Prints one line per phase: wall seconds, CPU seconds, peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets.base import InputSpec
from bench.datasets.textures import Textures, TextureSettings
from bench.methods import METHODS
from bench.methods.base import RunContext
from bench.methods.patchcore import PatchCore, memory_bank, patchcore_scores


def timed(label: str, fn: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:<34} wall {time.perf_counter() - wall:8.1f} s   "
          f"cpu {time.process_time() - cpu:8.1f} s   peak RSS {rss:7.0f} MB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="none",
                    choices=["none", "resnet18", "wide_resnet50_2", "vgg16"])
    ap.add_argument("--train", type=int, default=240)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--dim", type=int, default=1024, help="patch dimension (random features)")
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ctx = RunContext(device=device, seed=0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {device}")

    if args.backbone == "none":
        side = args.size // 8
        g = torch.Generator().manual_seed(0)
        train = torch.randn(args.train * side * side, args.dim, generator=g).to(device)
        test = torch.randn(args.test, side * side, args.dim, generator=g).to(device)
        print(f"random features: train {tuple(train.shape)}, test {tuple(test.shape)}")
    else:
        data = Textures(TextureSettings(crop=160, n_train=args.train,
                                        n_test_normal=args.test // 2,
                                        n_test_anomalous=args.test - args.test // 2))
        tr, te = data.load("brick", None, 0, InputSpec(size=args.size))
        method = METHODS.get("patchcore").build("", {"backbone": args.backbone,
                                                     "backbone_weights": "random"})
        assert isinstance(method, PatchCore)
        method._extractor(ctx)
        train = timed(f"extract {len(tr)} train images", lambda: method._patches(tr, ctx))
        train = train.reshape(-1, train.shape[-1])
        test = timed(f"extract {len(te)} test images", lambda: method._patches(te, ctx))
        test = test.reshape(len(te), -1, test.shape[-1])
        print(f"{args.backbone} (random) features: train {tuple(train.shape)}, "
              f"test {tuple(test.shape)}")

    bank = timed(f"coreset {args.ratio:.0%} of {len(train)}",
                 lambda: memory_bank(train, args.ratio, 128, torch.Generator().manual_seed(0)))
    timed(f"search {test.shape[0] * test.shape[1]} x {len(bank)} + reweighting",
          lambda: patchcore_scores(test, bank, 3))


if __name__ == "__main__":
    main()
