import math
import os

import pytest
import torch

from bench.datasets import DATASETS, _loading
from bench.datasets.augment import HEADCT_AFFINE, RandomAffine, headct_affine
from bench.datasets.base import InputSpec
from tests.datasets.fakes import fake_oct


def test_identity_affine_keeps_the_batch():
    x = torch.rand(3, 3, 16, 16)
    out = RandomAffine(degrees=0.0, scale=(1.0, 1.0))(x)
    assert torch.allclose(out, x, atol=1e-5)


def test_headct_affine_parameters_and_determinism():
    angles, scales = HEADCT_AFFINE.params(2000, torch.Generator().manual_seed(0))
    assert angles.abs().max() <= 20 and angles.min() < -19 and angles.max() > 19
    assert scales.min() >= 0.9 and scales.max() <= 1.05
    x = torch.rand(4, 3, 32, 32)
    a = headct_affine(x, torch.Generator().manual_seed(1))
    b = headct_affine(x, torch.Generator().manual_seed(1))
    c = headct_affine(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)


def test_affine_rotates_by_the_angle():
    x = torch.zeros(1, 1, 33, 33)
    x[0, 0, 16, 24:30] = 1.0  # a bar to the right of the centre
    out = RandomAffine().apply(x, torch.tensor([90.0], dtype=torch.float64),
                               torch.tensor([1.0], dtype=torch.float64))
    ys, xs = torch.nonzero(out[0, 0] > 0.5, as_tuple=True)
    assert (xs - 16).abs().max() <= 1  # now vertical, through the centre column
    assert ys.float().mean().sub(16).abs() > 5
    assert math.isclose(float(out.sum()), float(x.sum()), rel_tol=0.1)


def test_affine_on_uint8_keeps_dtype():
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert headct_affine(x).dtype == torch.uint8


def test_bad_affine_settings():
    with pytest.raises(ValueError):
        RandomAffine(degrees=-1)


def test_tensor_cache_hit_and_invalidation(tmp_path, monkeypatch):
    monkeypatch.setattr(_loading, "CACHE_MIN_IMAGES", 3)
    base = fake_oct(tmp_path, n_train=4, n_test=2)
    ds = DATASETS.get("retinal_oct")
    first, _ = ds.load("NORMAL", tmp_path, seed=0, spec=InputSpec(size=16))
    entries = list((tmp_path / ".cache/tensors/retinal_oct").glob("*.pt"))
    assert len(entries) == 2  # the 4 normal train images and the 8 test images

    def boom(path):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(_loading, "read_image", boom)
    again, _ = ds.load("NORMAL", tmp_path, seed=0, spec=InputSpec(size=16))
    assert torch.equal(again.images, first.images)
    monkeypatch.undo()
    monkeypatch.setattr(_loading, "CACHE_MIN_IMAGES", 3)
    # another input size is another entry; a changed file invalidates the entry
    ds.load("NORMAL", tmp_path, seed=0, spec=InputSpec(size=8))
    img = next((base / "train/NORMAL").iterdir())
    os.utime(img, ns=(1, 1))
    reread = []
    original = _loading.read_image
    monkeypatch.setattr(_loading, "read_image", lambda p: reread.append(p) or original(p))
    ds.load("NORMAL", tmp_path, seed=0, spec=InputSpec(size=16))
    assert len(reread) >= 4
    monkeypatch.setenv("BENCH_DATA_CACHE", "0")
    reread.clear()
    ds.load("NORMAL", tmp_path, seed=0, spec=InputSpec(size=16))
    assert len(reread) >= 4
