"""Pixel metrics at the ground truth's own resolution (issue 16, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import precision_recall_curve, roc_auc_score

from bench.core import metrics as M
from bench.core.errors import DataCorruptError
from bench.datasets.base import ArrayMasks, FileMasks, InputSpec, TaskData, crop_fraction


def _shrink(masks: np.ndarray, size: int) -> np.ndarray:
    """Masks resized the way the loaders resize them (bilinear), as floats."""
    return np.stack([np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(
        (size, size), Image.Resampling.BILINEAR), dtype=np.float64) / 255 for m in masks])


def _thin_defects(n: int = 8, native: int = 512, model: int = 64, seed: int = 0):
    """Half the images carry a 4 px line and a 6x6 square; maps light up on them, plus noise."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, native, native), dtype=bool)
    a, b = native // 5, native * 3 // 5
    masks[n // 2:, a:a + 4, native // 12:native - native // 12] = True
    masks[n // 2:, b:b + 6, b:b + 6] = True
    maps = rng.normal(size=(n, model, model))
    cover = torch.nn.functional.interpolate(torch.from_numpy(masks[:, None].astype(np.float32)),
                                            size=(model, model), mode="area")[:, 0].numpy()
    return masks, maps + 4 * cover


def test_thin_defects_vanish_at_the_model_size_but_count_at_their_own():
    masks, maps = _thin_defects()
    small = _shrink(masks, 64)
    assert (small >= 0.5).sum() == 0  # what the model-resolution protocol is left with
    metrics, protocol = M.evaluate(np.array([0] * 4 + [1] * 4), maps.max(axis=(1, 2)), small,
                                   maps, native_masks=list(masks))
    assert np.isnan(metrics["pixel_auroc_model_res"]) and np.isnan(metrics["pixel_aupro_model_res"])
    assert metrics["pixel_auroc"] > 0.8 and 0 < metrics["pixel_aupro"] < 1
    assert protocol["mask_size"] == [512, 512] and protocol["model_resolution"] == 64


def test_exact_native_equals_scikit_learn_and_pro_curve_on_upsampled_maps():
    masks, maps = _thin_defects(n=6, native=96, model=24, seed=1)
    up = np.stack([M.upsample_map(m, (96, 96)) for m in maps])
    found, protocol = M.native_pixel_metrics(list(masks), maps)
    assert protocol["thresholds"] == "exact"
    expected = roc_auc_score(masks.ravel(), up.ravel())
    assert found["pixel_auroc"] == pytest.approx(expected, abs=1e-12)
    assert found["pixel_aupro"] == pytest.approx(M.pixel_aupro(masks, up), abs=1e-12)
    precision, recall, _ = precision_recall_curve(masks.ravel(), up.ravel())
    f1 = np.max(2 * precision * recall / np.maximum(precision + recall, 1e-300))
    assert found["pixel_f1_max"] == pytest.approx(f1, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_thresholds_agree_with_the_exact_curves(seed):
    masks, maps = _thin_defects(n=6, native=256, model=32, seed=seed)
    exact, _ = M.native_pixel_metrics(list(masks), maps)
    binned, protocol = M.native_pixel_metrics(list(masks), maps, exact_limit=0)
    assert "quantiles" in protocol["thresholds"]
    for name in M.NATIVE_METRICS:
        assert binned[name] == pytest.approx(exact[name], abs=1e-3), name
    assert binned["pixel_auroc"] != exact["pixel_auroc"]  # it really took the other path


def test_streaming_survives_extreme_outliers():
    masks, maps = _thin_defects(n=4, native=128, model=16, seed=3)
    maps[0, 0, 0] = 1e12  # the grid would merge every threshold: it falls back to a search
    exact, _ = M.native_pixel_metrics(list(masks), maps)
    binned, protocol = M.native_pixel_metrics(list(masks), maps, exact_limit=0)
    assert "grid" not in protocol["thresholds"]
    assert binned["pixel_auroc"] == pytest.approx(exact["pixel_auroc"], abs=1e-3)


def test_masks_of_different_sizes_and_lazy_sequences():
    rng = np.random.default_rng(4)
    masks = [np.zeros((40, 60), bool), np.zeros((80, 50), bool)]
    masks[1][10:30, 5:25] = True
    maps = rng.normal(size=(2, 16, 16))
    maps[1, 2:6, 1:8] += 3
    found, protocol = M.native_pixel_metrics(ArrayMasks(masks, [(40, 60), (80, 50)]), maps)
    assert protocol["mask_size"] == "varies" and protocol["pixels"] == 40 * 60 + 80 * 50
    flat_m = np.concatenate([m.ravel() for m in masks])
    flat_s = np.concatenate([M.upsample_map(a, m.shape).ravel()
                             for a, m in zip(maps, masks, strict=True)])
    assert found["pixel_auroc"] == pytest.approx(roc_auc_score(flat_m, flat_s), abs=1e-12)
    with pytest.raises(ValueError, match="masks for"):
        M.native_pixel_metrics(masks[:1], maps)


def test_file_masks_read_lazily_binarize_nonzero_and_follow_the_crop(tmp_path):
    img, msk = tmp_path / "a.png", tmp_path / "a_mask.png"
    Image.fromarray(np.zeros((100, 80, 3), np.uint8)).save(img)
    mask = np.zeros((100, 80), np.uint8)
    mask[10:20, 10:20] = 1  # any non-zero value marks a defect
    Image.fromarray(mask).save(msk)
    good = tmp_path / "b.png"
    Image.fromarray(np.zeros((100, 80, 3), np.uint8)).save(good)
    spec = InputSpec(size=64, crop=48)
    fm = FileMasks([msk, None], [img, good], crop_fraction(spec, 128))
    assert fm.shapes() == [(75, 60), (75, 60)]
    first = fm[0]
    assert first.dtype == bool and first.shape == (75, 60)
    # the crop keeps rows 12..86 and columns 10..69: rows 10 and 11 of the square fall outside
    assert first.sum() == 8 * 10
    assert not fm[1].any() and fm.subset([1])[0].shape == (75, 60)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(msk)
    with pytest.raises(DataCorruptError, match="a_mask.png is 10x10"):
        fm[0]


def test_taskdata_subsets_keep_their_native_masks():
    masks = [np.full((20, 20), i == 2) for i in range(3)]
    data = TaskData(torch.zeros((3, 3, 8, 8), dtype=torch.uint8), [0, 0, 1],
                    torch.zeros((3, 8, 8)), native_masks=ArrayMasks(masks, [(20, 20)] * 3))
    sub = data.subset([2, 0])
    assert sub.native_masks is not None and sub.native_masks[0].all()
    assert not sub.native_masks[1].any()
    with pytest.raises(ValueError, match="one mask per image"):
        TaskData(torch.zeros((2, 3, 8, 8), dtype=torch.uint8), [0, 1],
                 native_masks=ArrayMasks(masks, [(20, 20)] * 3))
