"""Time and memory of the native-resolution pixel metrics on an MVTec-sized test set.

Synthetic masks at the ground truth's size (default 1024 px, as MVTec AD's largest categories)
with thin and small defects, and maps at the model's size (default 128 px). Masks are written
to PNG files and read back one at a time by :class:`bench.datasets.base.FileMasks`, as in a real
job. Prints the wall time and the peak resident memory of ``native_pixel_metrics``, and, where
the test set is small enough to compare, the streamed values against the exact ones.

    python benchmarks/native_pixel_metrics.py --images 150 --size 1024
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from bench.core.metrics import native_pixel_metrics
from bench.datasets.base import FileMasks


def _write(folder: Path, n: int, size: int, rng: np.random.Generator
           ) -> tuple[list[Path | None], list[Path]]:
    images, masks = [], []
    blank = Image.fromarray(np.zeros((size, size, 3), np.uint8))
    for i in range(n):
        img = folder / f"{i:04d}.png"
        blank.save(img)
        images.append(img)
        if i % 2 == 0:
            masks.append(None)
            continue
        m = np.zeros((size, size), np.uint8)
        y = int(rng.integers(0, size - 10))
        m[y:y + 6, size // 10: size - size // 10] = 255     # a 6 px scratch
        x = int(rng.integers(0, size - 12))
        m[x:x + 12, x:x + 12] = 255                          # a 12 px spot
        path = folder / f"{i:04d}_mask.png"
        Image.fromarray(m).save(path)
        masks.append(path)
    return masks, images


class _Peak:
    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=150)
    p.add_argument("--size", type=int, default=1024, help="mask side, px")
    p.add_argument("--model-size", type=int, default=128, help="anomaly map side, px")
    p.add_argument("--exact", action="store_true", help="also compute the exact values")
    p.add_argument("--stream", action="store_true",
                   help="stream even a test set small enough for the exact computation")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        mask_paths, image_paths = _write(Path(tmp), args.images, args.size, rng)
        masks = FileMasks(mask_paths, image_paths)
        maps = rng.normal(size=(args.images, args.model_size, args.model_size))
        before = psutil.Process().memory_info().rss
        peak = _Peak()
        watcher = threading.Thread(target=peak.run, daemon=True)
        watcher.start()
        t0 = time.perf_counter()
        found, protocol = native_pixel_metrics(masks, maps,
                                               **({"exact_limit": 0} if args.stream else {}))
        seconds = time.perf_counter() - t0
        peak.stop.set()
        watcher.join()
        pixels = protocol["pixels"]
        print(f"{args.images} masks of {args.size} px ({pixels / 1e6:.0f} M pixels), maps of "
              f"{args.model_size} px: {seconds:.1f} s ({seconds / args.images * 1e3:.0f} ms a "
              f"mask), peak memory +{(peak.peak - before) / 2**20:.0f} MiB; thresholds: "
              f"{protocol['thresholds']}")
        print("  " + ", ".join(f"{k} {v:.6f}" for k, v in found.items()))
        out = {"seconds": seconds, "peak_mib": (peak.peak - before) / 2**20, **found}
        if args.exact:
            exact, _ = native_pixel_metrics(masks, maps, exact_limit=pixels)
            diff = max(abs(exact[k] - found[k]) for k in found)
            print("  exact: " + ", ".join(f"{k} {v:.6f}" for k, v in exact.items())
                  + f"; largest difference {diff:.2e}")
            out["max_diff"] = diff
    return out


if __name__ == "__main__":
    main()
