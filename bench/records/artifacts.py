"""Per-job arrays kept next to a record: every test score and label, and a few anomaly maps.

``<root>/runs/<suite>/<job_id>/scores.npz`` (every test image's score, label and id) and
``maps.npz`` (at most :data:`MAX_ARTIFACT_MAPS` maps at float16 with their images and masks), for
ROC curves and localization overlays. Documented in ``results/README.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.records.files import atomic_write

#: at most this many anomaly maps (with their images and masks) are kept per job
MAX_ARTIFACT_MAPS = 8
SCORES_FILE = "scores.npz"
MAPS_FILE = "maps.npz"
log = logging.getLogger(__name__)


@dataclass
class Artifacts:
    """Per-job arrays kept next to a record (see ``results/README.md``)."""

    labels: np.ndarray                    # [N] int, 1 = anomaly
    scores: np.ndarray                    # [N] float64, higher = more anomalous
    ids: np.ndarray                       # [N] str, the test images' ids
    map_index: np.ndarray | None = None   # [K] indices into the test set of the kept maps
    maps: np.ndarray | None = None        # [K, H, W] float32 (stored as float16 x scale)
    masks: np.ndarray | None = None       # [K, H, W] float32 in [0, 1]
    images: np.ndarray | None = None      # [K, C, H, W] uint8, as the method saw them


def pick_examples(labels: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of at most ``n`` test images to keep maps of: half anomalies, half normals.

    Within each class the images are ordered by score and taken at evenly spaced ranks, so the
    kept set shows the best and worst detections, not only flattering ones. Deterministic.
    """
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    picked: list[np.ndarray] = []
    groups = [np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)]
    quota = [min(len(groups[0]), (n + 1) // 2)]
    quota.append(min(len(groups[1]), n - quota[0]))
    quota[0] = min(len(groups[0]), n - quota[1])
    for idx, k in zip(groups, quota, strict=True):
        if k <= 0:
            continue
        ordered = idx[np.argsort(-scores[idx], kind="stable")]
        picked.append(ordered[np.unique(np.linspace(0, len(ordered) - 1, k).round().astype(int))])
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def write_artifacts(
folder: Path,
labels: np.ndarray,
    scores: np.ndarray,
    *,
    ids: Iterable[str] | None = None,
    maps: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    images: np.ndarray | None = None,
    max_maps: int = MAX_ARTIFACT_MAPS,
) -> dict[str, Any]:
    """Save the job's per-image scores and a few maps; returns the record's ``artifacts``.

    Maps are divided by their largest absolute value and stored as float16 (the scale is
    stored beside them), so any score range survives the reduced precision.
    """
    labels = np.asarray(labels).ravel().astype(np.int8)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    id_arr = np.asarray(list(ids) if ids is not None else [str(i) for i in range(len(labels))],
                        dtype=str)
    atomic_write(folder / SCORES_FILE,
                  lambda fh: np.savez_compressed(fh, labels=labels, scores=scores, ids=id_arr))
    out: dict[str, Any] = {"scores": SCORES_FILE, "maps": None, "n_maps": 0}
    if maps is not None and max_maps > 0:
        index = pick_examples(labels, scores, max_maps)
        kept = np.asarray(maps, dtype=np.float64)[index]
        scale = float(np.abs(kept).max()) if kept.size else 1.0
        scale = scale if np.isfinite(scale) and scale > 0 else 1.0
        arrays: dict[str, np.ndarray] = {"index": index,
                                         "maps": (kept / scale).astype(np.float16),
                                         "scale": np.float64(scale)}
        if masks is not None:
            arrays["masks"] = np.asarray(masks, dtype=np.float16)[index]
        if images is not None:
            arrays["images"] = np.asarray(images, dtype=np.uint8)[index]
        atomic_write(folder / MAPS_FILE,
                      lambda fh: np.savez_compressed(fh, **arrays))  # type: ignore[arg-type]
        out.update(maps=MAPS_FILE, n_maps=len(index))
    return out

def read_artifacts(folder: Path) -> Artifacts | None:
    """The artifacts of a job, or None when the job saved none (or they are unreadable)."""
    try:
        with np.load(folder / SCORES_FILE) as z:
            art = Artifacts(labels=z["labels"].astype(np.int64), scores=z["scores"],
                            ids=z["ids"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable artifacts in %s: %s", folder, exc)
        return None
    try:
        with np.load(folder / MAPS_FILE) as z:
            art.map_index = z["index"]
            art.maps = z["maps"].astype(np.float32) * np.float32(z["scale"])
            art.masks = z["masks"].astype(np.float32) if "masks" in z else None
            art.images = z.get("images")
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable maps in %s: %s", folder, exc)
    return art
