"""``textures``: an MVTec-like benchmark built from scikit-image's bundled texture photographs.

Three tasks, ``brick``, ``grass`` and ``gravel`` (512×512 grey-scale photographs shipped with
scikit-image, so nothing downloads). Training normals are random crops from the left part of the
photograph (columns ``[0, 300)``); test normals and anomalies are crops from a disjoint right part
(columns ``[320, 512)``). Each anomaly carries one procedurally generated defect with an exact
pixel mask; the kinds rotate through

- ``scratch``: a thin straight or curved line whose pixels move by 115 grey levels;
- ``blob``: a smooth-noise-shaped region pulled towards black or white;
- ``patch``: a rectangle pasted from another of the three photographs, sometimes rotated.

Every pixel outside a mask equals the clean crop; pixels inside are changed. Everything is
deterministic given ``(task, seed)``: the seed chooses crop positions and defects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from bench.datasets.base import DatasetInfo, DatasetProtocol, InputSpec, TaskData, build_taskdata

CATEGORIES = ("brick", "grass", "gravel")
DEFECT_KINDS = ("scratch", "blob", "patch")
TRAIN_COLUMNS = (0, 300)
TEST_COLUMNS = (320, 512)


@dataclass(frozen=True)
class TextureSettings:
    crop: int = 64
    n_train: int = 60
    n_test_normal: int = 40
    n_test_anomalous: int = 40


@cache
def photograph(category: str) -> np.ndarray:
    import skimage.data  # only jobs on textures need it (start-up time)

    image = getattr(skimage.data, category)()
    return np.ascontiguousarray(image, dtype=np.uint8)


def _rng(category: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"textures/{category}/{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _crops(image: np.ndarray, columns: tuple[int, int], n: int, size: int,
           rng: np.random.Generator) -> list[np.ndarray]:
    h = image.shape[0]
    xs = rng.integers(columns[0], columns[1] - size + 1, size=n)
    ys = rng.integers(0, h - size + 1, size=n)
    return [image[y:y + size, x:x + size].copy() for x, y in zip(xs, ys, strict=True)]


def _scratch(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = crop.shape[0]
    p0, p1, p2 = rng.uniform(4, size - 4, size=(3, 2))
    t = np.linspace(0.0, 1.0, 4 * size)[:, None]
    # quadratic Bezier: a straight line when the control point lies on the chord
    bend = rng.uniform(0.0, 1.0)
    ctrl = (1 - bend) * (p0 + p2) / 2 + bend * p1
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t**2 * p2
    mask = np.zeros_like(crop, dtype=bool)
    ij = np.clip(np.rint(pts).astype(int), 0, size - 1)
    mask[ij[:, 0], ij[:, 1]] = True
    if rng.uniform() < 0.5:
        mask = ndimage.binary_dilation(mask, structure=np.ones((2, 2), dtype=bool))
    out = crop.astype(np.int16)
    shifted = np.where(out < 128, out + 115, out - 115)
    out = np.where(mask, shifted, out)
    return out.astype(np.uint8), mask


def _blob(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = crop.shape[0]
    mask = np.zeros_like(crop, dtype=bool)
    while mask.sum() < 0.01 * size * size:
        noise = ndimage.gaussian_filter(rng.normal(size=crop.shape), sigma=3.0)
        noise /= noise.std() + 1e-12
        cy, cx = rng.uniform(0.25 * size, 0.75 * size, size=2)
        radius = rng.uniform(0.08, 0.2) * size
        yy, xx = np.mgrid[0:size, 0:size]
        dist = np.hypot(yy - cy, xx - cx) / radius
        mask = (1.0 - dist + 0.35 * noise) > 0.0
        labels, n = ndimage.label(mask)
        if n > 1:  # keep the component holding the centre-most pixel
            keep = labels[int(cy), int(cx)] or np.bincount(labels.ravel())[1:].argmax() + 1
            mask = labels == keep
    target = 20.0 if crop[mask].mean() > 127 else 235.0
    out = crop.astype(np.float64)
    pulled = np.rint(target + (out - target) * 0.3)
    changed = np.where(mask, pulled, out)
    # a pixel that already sat at the target would not change: nudge it so the mask stays exact
    same = mask & (changed == out)
    changed[same] = np.where(out[same] < 128, out[same] + 40, out[same] - 40)
    return changed.astype(np.uint8), mask


def _patch(crop: np.ndarray, category: str,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = crop.shape[0]
    others = [c for c in CATEGORIES if c != category]
    source = photograph(others[int(rng.integers(len(others)))])
    ph, pw = rng.integers(size // 6, size // 3 + 1, size=2)
    sy = int(rng.integers(0, source.shape[0] - ph))
    sx = int(rng.integers(0, source.shape[1] - pw))
    piece = source[sy:sy + ph, sx:sx + pw]
    if rng.uniform() < 0.5:
        piece = np.rot90(piece)
        ph, pw = piece.shape
    y = int(rng.integers(0, size - ph + 1))
    x = int(rng.integers(0, size - pw + 1))
    out = crop.copy()
    region = out[y:y + ph, x:x + pw]
    # exact mask: where the pasted pixel happens to equal the original, shift it by one level
    piece = np.where(piece == region, np.where(piece < 255, piece + 1, piece - 1), piece)
    out[y:y + ph, x:x + pw] = piece
    mask = np.zeros_like(crop, dtype=bool)
    mask[y:y + ph, x:x + pw] = True
    return out, mask


def make_defect(crop: np.ndarray, kind: str, category: str,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Apply one defect of ``kind`` to a uint8 crop; returns (defective crop, boolean mask)."""
    if kind == "scratch":
        return _scratch(crop, rng)
    if kind == "blob":
        return _blob(crop, rng)
    if kind == "patch":
        return _patch(crop, category, rng)
    raise ValueError(f"unknown defect kind {kind!r}")


@lru_cache(maxsize=32)
def generate(category: str, seed: int, settings: TextureSettings = TextureSettings()) -> dict:
    """The raw uint8 crops of one task: train, test (normals then anomalies), masks, kinds."""
    image = photograph(category)
    rng = _rng(category, seed)
    s = settings
    train = _crops(image, TRAIN_COLUMNS, s.n_train, s.crop, rng)
    normals = _crops(image, TEST_COLUMNS, s.n_test_normal, s.crop, rng)
    bases = _crops(image, TEST_COLUMNS, s.n_test_anomalous, s.crop, rng)
    anomalies, masks, kinds = [], [], []
    for i, base in enumerate(bases):
        kind = DEFECT_KINDS[i % len(DEFECT_KINDS)]
        bad, mask = make_defect(base, kind, category, rng)
        anomalies.append(bad)
        masks.append(mask)
        kinds.append(kind)
    return {"train": train, "normal": normals, "clean": bases, "anomaly": anomalies,
            "mask": masks, "kind": kinds}


class Textures(DatasetProtocol):
    name = "textures"
    family = "textures"
    default_size = 64
    has_masks = True
    embedded = True
    supports_unified = True
    info = DatasetInfo(
        title="scikit-image texture photographs with synthetic defects",
        source="bundled with scikit-image (skimage.data.brick/grass/gravel)",
        license="CC0 / public domain photographs (see skimage.data); BSD-3 for scikit-image",
        size="3 tasks; 60 train, 40 normal + 40 defective test crops of 64x64 each",
        obtain="nothing to do: installed with scikit-image",
    )

    def __init__(self, settings: TextureSettings | None = None) -> None:
        self.settings = settings or TextureSettings()

    def tasks(self) -> list[str]:
        return list(CATEGORIES)

    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        self.check_task(task)
        spec = spec or InputSpec()
        raw = generate(task, seed, self.settings)
        size = self.settings.crop
        default = spec.size or size

        def pil(a: np.ndarray) -> Image.Image:
            return Image.fromarray(a)

        train = build_taskdata(
            [pil(a) for a in raw["train"]], [0] * len(raw["train"]), spec, default,
            ids=[f"textures/{task}/train/{i:03d}" for i in range(len(raw["train"]))],
            name=f"textures/{task}/train",
        )
        images = [pil(a) for a in raw["normal"] + raw["anomaly"]]
        labels = [0] * len(raw["normal"]) + [1] * len(raw["anomaly"])
        masks: list[Image.Image | None] = [None] * len(raw["normal"])
        masks += [pil(m.astype(np.uint8) * 255) for m in raw["mask"]]
        ids = [f"textures/{task}/test/good/{i:03d}" for i in range(len(raw["normal"]))]
        ids += [f"textures/{task}/test/{k}/{i:03d}" for i, k in enumerate(raw["kind"])]
        test = build_taskdata(images, labels, spec, default, masks=masks, ids=ids,
                              name=f"textures/{task}/test")
        return train, test
