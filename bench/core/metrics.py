"""Detection and localization metrics: pure functions on numpy arrays.

Higher scores mean more anomalous; label and mask value 1 marks an anomaly.

- ``image_auroc`` / ``image_ap``: scikit-learn's ROC AUC and average precision.
- ``image_f1_max``: the best F1 over every threshold of the test scores (an image is called
  anomalous iff its score >= the threshold; tied scores fall on the same side), i.e. the maximum
  of 2PR/(P+R) along the precision-recall curve. Optimistic: test labels choose the threshold.
- ``image_f1_at_train_quantile``: F1 at a threshold chosen without test labels, the
  ``q``-quantile of the method's scores on its own (normal) training images
  (:func:`train_quantile_f1`); the harness scores the training set after ``fit``.
- ``pixel_auroc``: the standard MVTec AD protocol, one ROC over **all** test pixels (normal
  images included), raw (unnormalized) maps, scored **at the ground truth's own resolution**:
  each map is upsampled bilinearly to its mask's size, as the MVTec AD evaluation expects maps at
  the size of the original images (:func:`native_pixel_metrics`).
- ``pixel_aupro``: area under the per-region-overlap curve up to FPR 0.3, divided by 0.3 (the
  integration limit, not the last FPR reached: that is anomalib's old AUPRO bug), at the ground
  truth's resolution too.
- ``pixel_f1_max``: the best F1 over all thresholds of the same pixels (anomalib's F1Max).
- ``pixel_auroc_model_res`` / ``pixel_aupro_model_res``: the same two on the masks shrunk to the
  model's input size (bilinear, cut at 0.5). Thin and small defects vanish there (a 6 px line of
  a 1024 px mask has no pixel left at 128 px), so these are kept under their own names only,
  for comparison with tools that score at the input size.
- ``pixel_auroc_mkd``: the official MKD code's localization metric, kept apart because it is not
  the standard one: defective images only, soft ground truth, maps expected in [0, 1] (the code
  normalizes each map), 1,000 thresholds 0, 0.001, ..., 0.999 with a morphological opening of the
  binarized map at each threshold, trapezoidal AUC over (FPR, TPR). It takes the maps a method
  declares for it (:data:`OWN_MAP_METRICS`), else the standard maps normalized per image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
from scipy import ndimage
from sklearn.metrics import auc, average_precision_score, roc_auc_score

CROSS_3x3 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)  # cv2's 3x3 MORPH_ELLIPSE
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    return labels, scores


def image_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC with anomalies (label 1) as the positive class; NaN if one class is missing."""
    labels, scores = _check(labels, scores)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def image_ap(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision with anomalies as the positive class."""
    labels, scores = _check(labels, scores)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(average_precision_score(labels, scores))


def _positives(labels: np.ndarray) -> np.ndarray | None:
    """Label 1 as a boolean mask; None when one class is missing (F1 is then undefined)."""
    positive = labels == 1
    return None if positive.all() or not positive.any() else positive


def image_f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 over all thresholds of ``scores`` (anomalous iff score >= threshold).

    One candidate threshold per distinct score, so tied images are always called alike (as on
    scikit-learn's precision-recall curve); NaN if one class is missing.
    """
    labels, scores = _check(labels, scores)
    positive = _positives(labels)
    if positive is None:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    tp = np.cumsum(positive[order])
    called = np.arange(1, len(ranked) + 1)
    last = np.append(ranked[1:] != ranked[:-1], True)  # the last image of each run of ties
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (called anomalous + all anomalies)
    return float(np.max(2.0 * tp[last] / (called[last] + positive.sum())))


def image_f1_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """F1 of calling an image anomalous iff its score >= ``threshold``; NaN if one class is
    missing, 0 when no anomaly is called."""
    labels, scores = _check(labels, scores)
    positive = _positives(labels)
    if positive is None:
        return float("nan")
    called = scores >= threshold
    tp = float((called & positive).sum())
    return 2.0 * tp / (float(called.sum()) + float(positive.sum()))


#: the default ``q`` of :func:`train_quantile_f1`: a 5% false-alarm rate on normal images if
#: test normals scored like training ones. 0.99 would rest on the top one or two training
#: scores of the smaller training sets (60 to 300 images), a threshold one image decides.
DEFAULT_THRESHOLD_QUANTILE = 0.95
#: how :func:`train_quantile_f1` takes the quantile (``numpy.quantile``'s ``method``)
QUANTILE_METHOD: Final = "linear"


def check_quantile(q: float) -> float:
    """``q`` as a float in (0, 1]; ValueError otherwise."""
    q = float(q)
    if not 0.0 < q <= 1.0:
        raise ValueError(f"the threshold quantile must be in (0, 1], got {q:g}")
    return q


def train_quantile_f1(labels: np.ndarray, scores: np.ndarray, train_scores: np.ndarray,
                      q: float = DEFAULT_THRESHOLD_QUANTILE) -> tuple[float, dict[str, Any]]:
    """F1 on the test set at the ``q``-quantile of the training (normal) images' scores.

    Test labels play no part in the threshold. Returns (F1, the record's ``threshold`` field:
    quantile, interpolation, threshold value, number of training images, rule).
    """
    q = check_quantile(q)
    train = np.asarray(train_scores, dtype=np.float64).ravel()
    if not len(train) or not np.isfinite(train).all():
        raise ValueError("training scores are empty or contain NaN or infinite values")
    threshold = float(np.quantile(train, q, method=QUANTILE_METHOD))
    protocol = {"source": "training images", "quantile": q, "method": QUANTILE_METHOD,
                "value": threshold, "train_images": len(train),
                "rule": "anomalous iff score >= value"}
    return image_f1_at(labels, scores, threshold), protocol


#: the one rule that makes a mask binary, everywhere (native masks, the masks resized to the
#: model's size, in-memory masks): a pixel is a defect where any channel is non-zero
MASK_RULE = "any non-zero value in any channel is a defect (alpha ignored)"


def defect_pixels(mask: Any) -> np.ndarray:
    """A mask (``H x W`` or ``H x W x C``, any dtype) as booleans by :data:`MASK_RULE`."""
    arr = np.asarray(mask)
    if arr.dtype == bool:
        return arr
    return np.asarray(arr.any(axis=-1) if arr.ndim == 3 else arr != 0, dtype=bool)


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """Standard pixel AUROC over all pixels of all test images; masks binarized at 0.5."""
    return image_auroc(np.asarray(masks) >= 0.5, maps)


def _trapezoid_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Area under the piecewise-linear curve (x, y) from x[0] to ``x_max``, interpolating."""
    keep = x <= x_max
    xs, ys = x[keep], y[keep]
    if xs[-1] < x_max and keep.sum() < len(x):
        nxt = int(np.argmax(~keep))
        x0, x1, y0, y1 = x[nxt - 1], x[nxt], y[nxt - 1], y[nxt]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0) if x1 > x0 else y1
        xs = np.append(xs, x_max)
        ys = np.append(ys, y_at)
    return float(np.trapezoid(ys, xs))


def _regions(mask: np.ndarray, offset: int = 0) -> tuple[np.ndarray, int]:
    """8-connected components of a binary mask, numbered from ``offset + 1`` (0 = normal)."""
    lab, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    return np.where(lab > 0, lab + offset, 0), int(n)


def _curves_exact(regions: np.ndarray, scores: np.ndarray, n_regions: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FPR, TPR and mean per-region overlap at every distinct threshold (descending), from
    (0, 0, 0); ``regions`` flat, 0 for normal pixels, 1..n_regions for defect regions."""
    n_normal = int((regions == 0).sum())
    n_defect = len(regions) - n_normal
    sizes = np.bincount(regions, minlength=n_regions + 1).astype(np.float64)
    pro_step = np.where(regions > 0, 1.0 / (sizes[regions] * max(n_regions, 1)), 0.0)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    # one point per distinct threshold: the last pixel of each run of equal scores
    last = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    normal = regions[order] == 0
    fp = np.cumsum(normal)[last]  # counts, so that the last point is exactly (1, 1)
    tp = np.cumsum(~normal)[last]
    pro = np.clip(np.cumsum(pro_step[order])[last], 0, 1)
    return (np.concatenate([[0.0], fp / max(n_normal, 1)]),
            np.concatenate([[0.0], tp / max(n_defect, 1)]),
            np.concatenate([[0.0], pro]))


def pro_curve(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and mean per-region overlap at every distinct threshold (descending), from (0, 0).

    Regions are the 8-connected components of each binary ground-truth mask; FPR counts every
    normal pixel of every test image.
    """
    masks = np.asarray(masks) >= 0.5
    maps = np.asarray(maps, dtype=np.float64)
    if masks.shape != maps.shape:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} differ in shape")
    if not np.isfinite(maps).all():
        raise ValueError("maps contain NaN or infinite values")
    regions = np.zeros(masks.shape, dtype=np.int64)
    n_regions = 0
    for i in range(len(masks)):
        regions[i], n = _regions(masks[i], n_regions)
        n_regions += n
    if n_regions == 0 or not (regions == 0).any():
        return np.array([0.0]), np.array([0.0])
    fpr, _, pro = _curves_exact(regions.ravel(), maps.ravel(), n_regions)
    return fpr, pro


def pixel_aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Normalized area under the PRO curve up to ``fpr_limit`` (divided by the limit)."""
    if not 0 < fpr_limit <= 1:
        raise ValueError("fpr_limit must be in (0, 1]")
    masks_b = np.asarray(masks) >= 0.5
    if not masks_b.any() or masks_b.all():
        return float("nan")
    fpr, pro = pro_curve(masks_b, maps)
    return _trapezoid_to(fpr, pro, fpr_limit) / fpr_limit


# ------------------------------------------------------------- at the ground truth's resolution

#: up to this many native-resolution pixels in a test set, pixel metrics are exact (every
#: distinct score a threshold, like the MVTec AD evaluation scripts; about 64 bytes a pixel of
#: memory); above it they stream image by image over :data:`NATIVE_BINS` thresholds
NATIVE_EXACT_LIMIT = 2**22
#: thresholds of the streaming evaluation: quantiles of the model-resolution maps, so that each
#: bin holds at most about 1/NATIVE_BINS of the pixels (an AUROC error of that order at most)
NATIVE_BINS = 2**14


def upsample_map(amap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One anomaly map resized bilinearly to ``shape`` (half-pixel centres, like PIL, OpenCV and
    torch's ``align_corners=False``), so each value stays within the map's range."""
    import torch  # here only: the command line imports this module for its constants

    amap = np.asarray(amap, dtype=np.float64)
    if amap.shape == tuple(shape):
        return amap
    out = torch.nn.functional.interpolate(
        torch.from_numpy(amap)[None, None], size=tuple(shape), mode="bilinear",
        align_corners=False)
    return out[0, 0].numpy()


def _f1_max(tp: np.ndarray, fp: np.ndarray, positives: float) -> float:
    """The best F1 = 2TP / (2TP + FP + FN) over the thresholds given by (TP, FP) pairs."""
    if positives <= 0:
        return float("nan")
    f1 = 2 * tp / np.maximum(tp + fp + positives, 1e-300)
    return float(f1.max())


def _exact_native(masks: Iterable[np.ndarray], maps: np.ndarray, fpr_limit: float
                  ) -> dict[str, float]:
    regions, scores = [], []
    n_regions = 0
    for mask, amap in zip(masks, maps, strict=True):
        reg, n = _regions(mask, n_regions)
        n_regions += n
        regions.append(reg.ravel())
        scores.append(upsample_map(amap, mask.shape).ravel())
    flat_regions = np.concatenate(regions)
    flat_scores = np.concatenate(scores)
    n_pos = int((flat_regions > 0).sum())
    if n_pos == 0 or n_pos == len(flat_regions):
        return dict.fromkeys(NATIVE_METRICS, float("nan"))
    fpr, tpr, pro = _curves_exact(flat_regions, flat_scores, n_regions)
    n_neg = len(flat_regions) - n_pos
    return {"pixel_auroc": float(np.trapezoid(tpr, fpr)),
            "pixel_aupro": _trapezoid_to(fpr, pro, fpr_limit) / fpr_limit,
            "pixel_f1_max": _f1_max(tpr * n_pos, fpr * n_neg, n_pos)}


class _Thresholds:
    """The streaming evaluation's thresholds and a fast way to count which a value reaches.

    Thresholds start as ``bins`` quantiles of the model-resolution maps; they are then snapped
    down to a uniform grid of :data:`GRID` cells over the maps' range, so that a pixel's count
    of thresholds at or below it is a table look-up of its grid cell (exact for the snapped
    thresholds, about 50 times faster than a binary search). Where snapping would merge more
    than half of them (scores with extreme outliers), the quantiles stay and a binary search
    counts.
    """

    GRID = 2**20

    def __init__(self, values: np.ndarray, bins: int) -> None:
        step = max(1, len(values) // (16 * bins))
        sample = np.sort(values[::step])  # one sort: np.quantile of 2^14 points partitions each
        quantiles = np.unique(sample[np.round(np.linspace(0, len(sample) - 1, bins)).astype(int)])
        lo, hi = float(values.min()), float(values.max())
        self.lo = lo
        self.scale = self.GRID / (hi - lo) if hi > lo else 0.0
        cells = np.unique(np.floor((quantiles - lo) * self.scale).astype(np.int64))
        cells[0] = 0  # the lowest threshold is the maps' minimum: every pixel reaches it
        self.snapped = len(cells) * 2 >= len(quantiles)
        if self.snapped:
            self.count = len(cells)
            self.table = np.searchsorted(cells, np.arange(self.GRID), side="right")
            self.how = f"{self.count} quantiles of the model-resolution maps, on a 2^20 grid"
        else:
            quantiles[0] = lo
            self.edges = quantiles
            self.count = len(quantiles)
            self.how = f"{self.count} quantiles of the model-resolution maps"

    def reached(self, values: np.ndarray) -> np.ndarray:
        """For each value, how many thresholds are at or below it (0 .. count)."""
        if not self.snapped:
            return np.searchsorted(self.edges, values, side="right")
        cell = ((values - self.lo) * self.scale).astype(np.int64)
        np.clip(cell, 0, self.GRID - 1, out=cell)
        return self.table[cell]


def _binned_native(masks: Iterable[np.ndarray], maps: np.ndarray, fpr_limit: float,
                   bins: int) -> tuple[dict[str, float], str]:
    thresholds = _Thresholds(maps.ravel(), bins)
    k = thresholds.count
    neg = np.zeros(k + 1, dtype=np.int64)
    pos = np.zeros(k + 1, dtype=np.int64)
    pro_sum = np.zeros(k, dtype=np.float64)
    n_regions = 0
    for mask, amap in zip(masks, maps, strict=True):
        # how many thresholds each pixel reaches: it counts as positive at thresholds j < index
        index = thresholds.reached(upsample_map(amap, mask.shape).ravel())
        flat_mask = mask.ravel()
        neg += np.bincount(index[~flat_mask], minlength=k + 1)
        pos += np.bincount(index[flat_mask], minlength=k + 1)
        reg, n = _regions(mask)
        if n == 0:
            continue
        n_regions += n
        inside = reg.ravel()[flat_mask] - 1
        counts = np.bincount(inside * (k + 1) + index[flat_mask],
                             minlength=n * (k + 1)).reshape(n, k + 1)
        # pixels of each region at or above threshold j: the suffix sums from index j + 1
        above = counts[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]
        pro_sum += (above / counts.sum(axis=1, keepdims=True)).sum(axis=0)
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return dict.fromkeys(NATIVE_METRICS, float("nan")), thresholds.how
    tp = pos[::-1].cumsum()[::-1][1:]  # at threshold j (ascending j)
    fp = neg[::-1].cumsum()[::-1][1:]
    fpr = np.concatenate([[0.0], (fp / n_neg)[::-1]])
    tpr = np.concatenate([[0.0], (tp / n_pos)[::-1]])
    pro = np.concatenate([[0.0], (pro_sum / n_regions)[::-1]])
    return {"pixel_auroc": float(np.trapezoid(tpr, fpr)),
            "pixel_aupro": _trapezoid_to(fpr, pro, fpr_limit) / fpr_limit,
            "pixel_f1_max": _f1_max(tp.astype(np.float64), fp.astype(np.float64), n_pos),
            }, thresholds.how


def native_pixel_metrics(
    masks: Sequence[np.ndarray],
    maps: np.ndarray,
    *,
    fpr_limit: float = 0.3,
    exact_limit: int = NATIVE_EXACT_LIMIT,
    bins: int = NATIVE_BINS,
) -> tuple[dict[str, float], dict[str, Any]]:
    """``pixel_auroc``, ``pixel_aupro`` and ``pixel_f1_max`` against binary masks at their own
    resolution; returns (metrics, what defines them).

    ``masks`` is any sequence of boolean ``H x W`` arrays (they may differ in size and be read
    lazily, one at a time, from files); ``maps[i]`` is upsampled bilinearly to ``masks[i]``'s
    size. Up to ``exact_limit`` pixels in all, every distinct score is a threshold (exact, as the
    MVTec AD evaluation computes them). Above it, memory stays bounded: one pass over the images
    accumulates, at ``bins`` thresholds placed at quantiles of the (model-resolution) maps,
    histograms of normal and defect pixels and each defect region's overlap curve; the curves
    are then integrated like the exact ones.
    """
    if not 0 < fpr_limit <= 1:
        raise ValueError("fpr_limit must be in (0, 1]")
    maps = np.asarray(maps, dtype=np.float64)
    if len(masks) != len(maps):
        raise ValueError(f"{len(masks)} masks for {len(maps)} anomaly maps")
    if not np.isfinite(maps).all():
        raise ValueError("maps contain NaN or infinite values")
    shapes = [(int(s[0]), int(s[1])) for s in _shapes(masks)]
    total = sum(h * w for h, w in shapes)
    exact = total <= exact_limit
    bool_masks = (_as_bool(masks[i]) for i in range(len(masks)))  # one at a time
    if exact:
        metrics, how = _exact_native(bool_masks, maps, fpr_limit), "exact"
    else:
        metrics, how = _binned_native(bool_masks, maps, fpr_limit, bins)
    sizes = sorted(set(shapes))
    protocol = {
        "mask_size": list(sizes[0]) if len(sizes) == 1 else "varies",
        "map_upsampling": "bilinear (half-pixel centres)",
        "thresholds": how,
        "pixels": total,
    }
    return metrics, protocol


def _shapes(masks: Sequence[np.ndarray]) -> list[tuple[int, ...]]:
    """The masks' sizes, without reading files where the sequence knows them (``shapes()``)."""
    known = getattr(masks, "shapes", None)
    if callable(known):
        return [tuple(s) for s in known()]
    return [np.shape(m) for m in masks]


def _as_bool(mask: np.ndarray) -> np.ndarray:
    """A mask as booleans: soft in-memory masks are cut at 0.5."""
    mask = np.asarray(mask)
    return mask if mask.dtype == bool else mask >= 0.5


def normalize_per_image(maps: np.ndarray) -> np.ndarray:
    """Min-max normalize each map to [0, 1] (a constant map becomes zeros)."""
    maps = np.asarray(maps, dtype=np.float64)
    flat = maps.reshape(len(maps), -1)
    lo = flat.min(axis=1, keepdims=True)
    hi = flat.max(axis=1, keepdims=True)
    out = (flat - lo) / np.where(hi > lo, hi - lo, 1.0)
    return out.reshape(maps.shape)


def pixel_auroc_mkd(masks: np.ndarray, maps: np.ndarray, labels: np.ndarray) -> float:
    """The official MKD code's pixel AUROC (REFERENCE §5.3), on defective images only.

    ``masks`` are soft in [0, 1]; ``maps`` should already be in [0, 1] (the official code
    normalizes every map). Binary opening after each threshold equals one grey-scale opening
    before thresholding (threshold decomposition), which is how this computes it.
    """
    labels = np.asarray(labels).ravel()
    sel = labels == 1
    if not sel.any():
        return float("nan")
    gt = np.asarray(masks, dtype=np.float64)[sel]
    opened = np.stack([
        ndimage.grey_opening(m, footprint=CROSS_3x3, mode="reflect")
        for m in np.asarray(maps, dtype=np.float64)[sel]
    ])
    values = opened.ravel()
    g = gt.ravel()
    order = np.argsort(values)
    v_sorted = values[order]
    # totals of gt and (1 - gt) over pixels with value >= t, via suffix sums
    pos_suffix = np.concatenate([np.cumsum(g[order][::-1])[::-1], [0.0]])
    neg_suffix = np.concatenate([np.cumsum((1.0 - g)[order][::-1])[::-1], [0.0]])
    thresholds = np.arange(1000) / 1000.0
    first = np.searchsorted(v_sorted, thresholds, side="left")
    tp = pos_suffix[first]
    fp = neg_suffix[first]
    total_pos = g.sum()
    total_neg = (1.0 - g).sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    tpr = tp / total_pos
    fpr = fp / total_neg
    return float(auc(fpr, tpr))


#: what a record's ``pixel_protocol`` says of the maps an own-map metric used
FROM_METHOD, PER_IMAGE_MINMAX = "method", "per-image min-max"

#: the pixel metrics whose protocol expects maps post-processed its own way: metric -> (the
#: metric, the ``pixel_protocol`` field that says whose maps it used). A method that makes such
#: maps declares them (``Method.extra_map_protocols``); otherwise the metric gets the standard
#: maps min-max normalized per image.
OWN_MAP_METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray, np.ndarray], float], str]] = {
    "pixel_auroc_mkd": (pixel_auroc_mkd, "mkd_protocol_maps"),
}

#: the pixel metrics scored at the ground truth's own resolution (:func:`native_pixel_metrics`)
NATIVE_METRICS = ("pixel_auroc", "pixel_aupro", "pixel_f1_max")
#: the same protocol on the masks at the model's input size (kept for comparison)
MODEL_RES_METRICS = ("pixel_auroc_model_res", "pixel_aupro_model_res")

#: every metric that :func:`evaluate` computes, in the order tables show them
#: the F1 at a threshold taken from the training scores (computed by the harness, which scores
#: the training set; not by :func:`evaluate`)
TRAIN_THRESHOLD_METRIC = "image_f1_at_train_quantile"

#: every metric of a record's final evaluation (:func:`evaluate`, and
#: :data:`TRAIN_THRESHOLD_METRIC`), in the order tables show them
METRIC_NAMES = ("image_auroc", "image_ap", "image_f1_max", TRAIN_THRESHOLD_METRIC,
                *NATIVE_METRICS, *MODEL_RES_METRICS, *OWN_MAP_METRICS)


def uses_method_maps(protocol: Mapping[str, Any] | None) -> bool:
    """Whether a record's pixel protocol scored some metric on maps its method made for it."""
    return any((protocol or {}).get(field) == FROM_METHOD for _, field in OWN_MAP_METRICS.values())


def evaluate(
    labels: np.ndarray,
    image_scores: np.ndarray,
    masks: np.ndarray | None = None,
    maps: np.ndarray | None = None,
    metric_maps: Mapping[str, np.ndarray] | None = None,
    native_masks: Sequence[np.ndarray] | None = None,
    *,
    native: bool = True,
) -> tuple[dict[str, float], dict[str, Any] | None]:
    """All metrics that apply; returns (metrics, pixel protocol or None).

    ``masks`` are the masks at the maps' (the model's) size; ``native_masks`` the binary masks
    at the dataset's own resolution (default: ``masks`` themselves, for data whose masks were
    never resized). ``native=False`` leaves the native-resolution metrics out (the cheap set, for
    evaluations during training). ``metric_maps``: metric name -> maps the method
    post-processed for that metric's protocol (only the metrics of :data:`OWN_MAP_METRICS`; the
    others take ``maps``).
    """
    own = dict(metric_maps or {})
    unknown = sorted(set(own) - set(OWN_MAP_METRICS))
    if unknown:
        raise ValueError(f"no metric takes maps of its own as {', '.join(unknown)}; "
                         f"those that do: {', '.join(OWN_MAP_METRICS)}")
    metrics = {
        "image_auroc": image_auroc(labels, image_scores),
        "image_ap": image_ap(labels, image_scores),
        "image_f1_max": image_f1_max(labels, image_scores),
    }
    if masks is None or maps is None:
        return metrics, None
    masks = np.asarray(masks, dtype=np.float64)
    maps = np.asarray(maps, dtype=np.float64)
    if maps.shape != masks.shape:
        raise ValueError(f"anomaly maps {maps.shape} do not match the masks {masks.shape}")
    # the standard pixel metrics' masks: the dataset's own, or (a dataset without native
    # masks) the masks at the model's size, and the record says which
    protocol: dict[str, Any] = {
        "resolution": None if not native else "native" if native_masks is not None else "model",
        "model_resolution": int(masks.shape[-1]),
        "includes_normal_images": True,
        "mask_threshold": 0.5,  # of the masks at the model's size (soft after resizing)
        "mask_rule": MASK_RULE,
        "aupro_fpr_limit": 0.3,
    }
    if native:
        given: Sequence[np.ndarray] = list(masks) if native_masks is None else native_masks
        found, how = native_pixel_metrics(given, maps)
        metrics.update(found)
        protocol.update(how)
    metrics["pixel_auroc_model_res"] = pixel_auroc(masks, maps)
    metrics["pixel_aupro_model_res"] = pixel_aupro(masks, maps)
    for name, (metric, field) in OWN_MAP_METRICS.items():
        mine = own.get(name)
        metrics[name] = metric(masks, normalize_per_image(maps) if mine is None else mine,
                               labels)
        protocol[field] = PER_IMAGE_MINMAX if mine is None else FROM_METHOD
    return metrics, protocol
