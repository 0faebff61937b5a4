"""Private plumbing shared by the on-disk datasets: finding layouts, reading image files into
preallocated ``uint8`` tensors in parallel, and an optional on-disk cache of those tensors.

Why preallocate: a list of decoded images plus a ``np.stack`` of it needs twice the memory of
the result (1.5 GB for CIFAR-10's test set at 224 px); filling one tensor in place does not.
Why threads: Pillow releases the GIL while decoding and resizing, so a few threads speed up the
26k-image Retinal-OCT training set without the pickling cost of processes.

The cache (``<data-root>/.cache/tensors/<dataset>/<key>.pt``) holds the resized tensors of
large file lists (at least :data:`CACHE_MIN_IMAGES` images). Its key covers every file's
relative path, size and modification time, the :class:`InputSpec`, the default size and
:data:`CACHE_VERSION`, so a changed file or setting never reuses a stale entry. Set
``BENCH_DATA_CACHE=0`` to turn it off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from bench.datasets.base import (
    FileMasks,
    InputSpec,
    TaskData,
    crop_fraction,
    read_image,
    transform_image,
    transform_mask,
)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
CACHE_ENV = "BENCH_DATA_CACHE"
THREADS_ENV = "BENCH_LOAD_THREADS"
CACHE_MIN_IMAGES = 1000
CACHE_VERSION = 1
_SKIP_DIRS = ("__MACOSX",)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))


def count_images(folder: Path) -> int:
    """How many image files ``folder`` holds (0 when it does not exist); no decoding."""
    if not folder.is_dir():
        return 0
    with os.scandir(folder) as it:
        return sum(1 for e in it if e.is_file() and is_image(Path(e.name)))


def find_base(top: Path, accept: Callable[[Path], bool], depth: int = 3) -> Path | None:
    """The shallowest folder under ``top`` (``top`` included) that ``accept`` takes.

    Archives from Kaggle and elsewhere wrap the data in one or two extra folders (for example
    ``OCT2017 /`` with a trailing space); searching a few levels accepts them as extracted.
    """
    level = [top]
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for folder in level:
            if not folder.is_dir():
                continue
            if accept(folder):
                return folder
            nxt.extend(sorted(p for p in folder.iterdir() if p.is_dir()
                              and not p.name.startswith(".") and p.name not in _SKIP_DIRS))
        level = nxt
    return None


def _threads() -> int:
    env = os.environ.get(THREADS_ENV)
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(8, os.cpu_count() or 1))


def fill(n: int, shape: tuple[int, ...], dtype: torch.dtype,
         make: Callable[[int], np.ndarray]) -> torch.Tensor:
    """A tensor ``[n, *shape]`` whose row ``i`` is ``make(i)``, filled in place by a few threads."""
    out = torch.empty((n, *shape), dtype=dtype)
    arr = out.numpy()

    def work(i: int) -> None:
        arr[i] = make(i)

    workers = min(_threads(), n)
    if workers <= 1:
        for i in range(n):
            work(i)
        return out
    ex = ThreadPoolExecutor(max_workers=workers)
    try:
        for _ in ex.map(work, range(n)):
            pass
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
    return out


def cache_enabled() -> bool:
    return os.environ.get(CACHE_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def _fingerprint(paths: Sequence[Path | None], base: Path) -> list[Any]:
    out: list[Any] = []
    for p in paths:
        if p is None:
            out.append(None)
            continue
        st = p.stat()
        try:
            rel = str(p.relative_to(base))
        except ValueError:
            rel = str(p)
        out.append([rel, st.st_size, st.st_mtime_ns])
    return out


class TensorCache:
    """Resized uint8 tensors on disk, keyed by the files' fingerprint and the input spec."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key(self, parts: dict[str, Any]) -> str:
        text = json.dumps({**parts, "version": CACHE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{key}.pt"
        if not path.is_file():
            return None
        try:
            return dict(torch.load(path, weights_only=True))
        except Exception as exc:  # a damaged entry is rebuilt, never trusted
            log.warning("ignoring unreadable cache entry %s: %s", path, exc)
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{key}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    torch.save(value, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o644)  # mkstemp makes it private; the data root may be shared
                os.replace(tmp, self.folder / f"{key}.pt")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as exc:  # a read-only data root must not stop a run
            log.warning("cannot write tensor cache in %s: %s", self.folder, exc)


def _native_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return int(im.size[1]), int(im.size[0])
    except OSError:
        return (0, 0)


def load_files(
    paths: Sequence[Path],
    spec: InputSpec,
    default_size: int,
    *,
    mask_paths: Sequence[Path | None] | None = None,
    base: Path | None = None,
    cache_dir: Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int]]:
    """Read, resize (and crop) image files into ``uint8 [N, 3, S, S]`` and masks into ``[N, S, S]``.

    A ``None`` mask path gives an all-zero mask; any non-zero value in any channel of a mask
    is a defect, before resizing (:func:`~bench.datasets.base.transform_mask`). ``cache_dir``
    enables the on-disk cache for lists of at least :data:`CACHE_MIN_IMAGES` files. Returns
    (images, masks, native HxW of the first image).
    """
    n = len(paths)
    if n == 0:
        raise ValueError("no image files to load")
    out = spec.output_size(default_size)
    cache = None
    key = ""
    if cache_dir is not None and n >= CACHE_MIN_IMAGES and cache_enabled():
        cache = TensorCache(cache_dir)
        anchor = base or Path(os.path.commonpath([str(p) for p in paths]))
        parts = {"files": _fingerprint(paths, anchor),
                 "masks": _fingerprint(mask_paths or [], anchor),
                 "spec": [spec.size, spec.crop, spec.interpolation],
                 "default_size": default_size}
        # the key of the caches made under the mask rule (any channel non-zero): caches of
        # masks made otherwise (grey level, then >= 0.5) are not reused
        key = cache.key({**parts, "nonzero_masks": True})
        hit = cache.get(key)
        if hit is not None:
            log.info("tensor cache hit %s (%d images)", key, n)
            nat = hit["native"]
            return hit["images"], hit.get("masks"), (int(nat[0]), int(nat[1]))

    images = fill(n, (3, out, out), torch.uint8,
                  lambda i: transform_image(read_image(paths[i]), spec, default_size))
    masks = None
    if mask_paths is not None:
        def make_mask(i: int) -> np.ndarray:
            mp = mask_paths[i]
            if mp is None:
                return transform_mask(None, spec, default_size)
            return transform_mask(read_image(mp), spec, default_size)

        masks = fill(n, (out, out), torch.float32, make_mask)
    native = _native_size(paths[0])
    if cache is not None:
        cache.put(key, {"images": images, "masks": masks, "native": list(native)})
    return images, masks, native


def load_arrays(arrays: np.ndarray, spec: InputSpec, default_size: int) -> torch.Tensor:
    """``uint8`` images ``[N, H, W]`` or ``[N, H, W, 3]`` to ``[N, 3, S, S]``, via PIL like the
    official transforms; arrays already at the output size are copied without resampling."""
    n = len(arrays)
    if n == 0:
        raise ValueError("no images to load")
    size = spec.size or default_size
    out = spec.output_size(default_size)
    h, w = arrays.shape[1:3]
    if (h, w) == (size, size) and not spec.crop:
        src = torch.from_numpy(np.ascontiguousarray(arrays))
        if src.ndim == 3:
            return src.unsqueeze(1).expand(n, 3, h, w).contiguous()
        return src.permute(0, 3, 1, 2).contiguous()
    return fill(n, (3, out, out), torch.uint8,
                lambda i: transform_image(Image.fromarray(arrays[i]), spec, default_size))


def taskdata_from_index(rows: pd.DataFrame, spec: InputSpec, default_size: int, *, name: str,
                        base: Path, id_prefix: str, cache_dir: Path | None = None,
                        with_masks: bool = False) -> TaskData:
    """Load the files of an index DataFrame (columns ``path``, ``label`` and, with masks,
    ``mask_path``; ``None`` = zero mask) into a :class:`TaskData` whose ids are the paths
    relative to ``base``, prefixed with ``id_prefix``."""
    paths = [Path(p) for p in rows["path"]]
    mask_paths = ([Path(m) if isinstance(m, str) else None for m in rows["mask_path"]]
                  if with_masks else None)
    images, masks, native = load_files(paths, spec, default_size, mask_paths=mask_paths,
                                       base=base, cache_dir=cache_dir)
    ids = [f"{id_prefix}/{p.relative_to(base).as_posix()}" for p in paths]
    native_masks = (FileMasks(mask_paths, paths, crop_fraction(spec, default_size))
                    if mask_paths is not None else None)
    return TaskData(images, rows["label"].to_numpy(dtype=np.int64), masks, ids,
                    native_size=native, name=name, native_masks=native_masks)
