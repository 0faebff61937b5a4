"""One mask rule everywhere: any non-zero value in any channel of a mask is a defect, for the
masks at the dataset's own resolution and for those resized to the model's size; the record's
pixel protocol names the masks the standard pixel metrics were scored on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.core.metrics import defect_pixels, evaluate
from bench.datasets._loading import taskdata_from_index
from bench.datasets.base import InputSpec, TaskData, build_taskdata, mask_pixels
from bench.methods.base import Scores
from bench.run.execute import score_metrics

NATIVE = 96


def _coded(kind: str) -> np.ndarray:
    """A 96 px mask whose defect (rows 24..71, columns 30..65) is coded as ``kind``."""
    if kind == "blue":  # RGB, value 1 in the blue channel only
        arr = np.zeros((NATIVE, NATIVE, 3), np.uint8)
        arr[24:72, 30:66, 2] = 1
    else:  # grey value 1
        arr = np.zeros((NATIVE, NATIVE), np.uint8)
        arr[24:72, 30:66] = 1
    return arr


def _defect() -> np.ndarray:
    out = np.zeros((NATIVE, NATIVE), bool)
    out[24:72, 30:66] = True
    return out


@pytest.mark.parametrize("kind", ["blue", "grey"])
def test_the_rule_on_arrays_and_images(kind):
    arr = _coded(kind)
    assert (defect_pixels(arr) == _defect()).all()
    assert (mask_pixels(Image.fromarray(arr)) == _defect()).all()
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 255  # an opaque alpha channel is not a defect
    rgba[2, 3, 0] = 1
    assert mask_pixels(Image.fromarray(rgba)).sum() == 1


def _folder(tmp_path, kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        img = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (NATIVE, NATIVE, 3), dtype=np.uint8)).save(img)
        mask = None
        if i >= 2:
            mask = tmp_path / f"img{i}_mask.png"
            Image.fromarray(_coded(kind)).save(mask)
        rows.append({"path": str(img), "split": "test", "label": int(i >= 2),
                     "mask_path": None if mask is None else str(mask)})
    return pd.DataFrame(rows)


def _perfect_maps(data: TaskData) -> np.ndarray:
    assert data.masks is not None
    return data.masks.numpy().astype(np.float64)


@pytest.mark.parametrize("kind", ["blue", "grey"])
def test_coded_mask_files_give_defects_at_both_resolutions(tmp_path, kind):
    test = taskdata_from_index(_folder(tmp_path, kind), InputSpec(size=32), NATIVE,
                               name="t/test", base=tmp_path, id_prefix="t", with_masks=True)
    assert test.native_masks is not None
    native = test.native_masks[2]
    assert native.shape == (NATIVE, NATIVE) and (native == _defect()).all()
    assert test.masks is not None
    model = test.masks.numpy()
    assert (model[2] >= 0.5).sum() == 16 * 12  # the defect at 32 px: rows 8..23, cols 10..21
    assert not model[0].any()
    maps = _perfect_maps(test)
    metrics, protocol = score_metrics(test, Scores(image=np.arange(4.0), maps=maps))
    assert protocol is not None and protocol["resolution"] == "native"
    for name in ("pixel_auroc", "pixel_aupro", "pixel_auroc_model_res", "pixel_aupro_model_res"):
        assert metrics[name] == pytest.approx(1.0), name
    assert protocol["mask_size"] == [NATIVE, NATIVE] and protocol["model_resolution"] == 32


@pytest.mark.parametrize("kind", ["blue", "grey"])
def test_coded_in_memory_masks_give_defects_at_both_resolutions(kind):
    images = [Image.fromarray(np.full((NATIVE, NATIVE, 3), 9 * i, np.uint8)) for i in range(4)]
    masks = [None, None, Image.fromarray(_coded(kind)), Image.fromarray(_coded(kind))]
    test = build_taskdata(images, [0, 0, 1, 1], InputSpec(size=48), NATIVE, masks=masks)
    assert test.native_masks is not None and (test.native_masks[3] == _defect()).all()
    metrics, protocol = score_metrics(test, Scores(image=np.arange(4.0), maps=_perfect_maps(test)))
    assert metrics["pixel_auroc"] == pytest.approx(1.0)
    assert metrics["pixel_auroc_model_res"] == pytest.approx(1.0)
    assert protocol is not None and protocol["resolution"] == "native"


def test_without_native_masks_the_protocol_says_model():
    masks = np.zeros((4, 16, 16), np.float32)
    masks[2:, 4:9, 4:9] = 1.0
    data = TaskData(torch.zeros((4, 3, 16, 16), dtype=torch.uint8), [0, 0, 1, 1],
                    torch.from_numpy(masks))
    metrics, protocol = score_metrics(data, Scores(image=np.arange(4.0),
                                                   maps=masks.astype(np.float64)))
    assert protocol is not None and protocol["resolution"] == "model"
    assert "no native masks" in protocol["mask_binarization"]
    assert metrics["pixel_auroc"] == pytest.approx(1.0)
    _, during_training = evaluate(np.array([0, 0, 1, 1]), np.arange(4.0), masks, masks,
                                  native=False)
    assert during_training is not None and during_training["resolution"] is None
