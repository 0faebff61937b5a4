import numpy as np
import pytest
import torch

from bench.datasets import DATASETS
from bench.datasets.base import InputSpec
from bench.datasets.textures import DEFECT_KINDS, Textures, TextureSettings, generate


def test_digits_shapes_labels_and_split():
    ds = DATASETS.get("digits")
    assert ds.tasks() == [str(i) for i in range(10)]
    train, test = ds.load("3", None, seed=0)
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    assert (train.labels == 0).all()
    assert 80 <= len(train) <= 100 and 850 <= len(test) <= 950
    assert 0.85 < test.labels.mean() < 0.95
    assert not set(train.ids) & set(test.ids)  # disjoint pools
    img, _, mask = test[0]
    assert img.dtype == torch.float32 and img.min() >= 0.0 and img.max() <= 1.0 and mask is None


def test_digits_split_is_fixed_and_resizable():
    ds = DATASETS.get("digits")
    a, _ = ds.load("5", None, seed=0)
    b, _ = ds.load("5", None, seed=7)
    assert a.ids == b.ids and torch.equal(a.images, b.images)
    c, _ = ds.load("5", None, seed=0, spec=InputSpec(size=64))
    assert c.images.shape[2:] == (64, 64)


def test_textures_counts_masks_and_determinism():
    ds = DATASETS.get("textures")
    train, test = ds.load("brick", None, seed=0)
    assert len(train) >= 60 and (test.labels == 0).sum() >= 40 and (test.labels == 1).sum() >= 40
    assert train.images.shape[1:] == (3, 64, 64)
    assert test.masks is not None and test.masks.shape == (len(test), 64, 64)
    normal = test.labels == 0
    assert test.masks[torch.from_numpy(normal)].sum() == 0
    assert (test.masks[torch.from_numpy(~normal)].flatten(1).sum(1) > 0).all()
    _, again_test = ds.load("brick", None, seed=0)
    assert torch.equal(again_test.images, test.images)
    _, other = ds.load("brick", None, seed=1)
    assert not torch.equal(other.images, test.images)
    kinds = {i.split("/")[3] for i in test.ids if "/good/" not in i}
    assert kinds == set(DEFECT_KINDS)


@pytest.mark.parametrize("category", ["brick", "grass", "gravel"])
def test_texture_masks_cover_exactly_the_defects(category):
    raw = generate(category, 3, TextureSettings())
    for clean, bad, mask in zip(raw["clean"], raw["anomaly"], raw["mask"], strict=True):
        changed = clean != bad
        assert not changed[~mask].any(), "a pixel outside the mask changed"
        assert changed[mask].all(), "a pixel inside the mask is unchanged"


def test_texture_train_and_test_regions_are_disjoint():
    # train crops come from columns [0, 300), test crops from [320, 512): compare content
    raw = generate("gravel", 0, TextureSettings())
    train = {c.tobytes() for c in raw["train"]}
    assert not train & {c.tobytes() for c in raw["normal"] + raw["clean"]}


def test_texture_settings_are_configurable():
    ds = Textures(TextureSettings(crop=32, n_train=10, n_test_normal=4, n_test_anomalous=6))
    train, test = ds.load("grass", None, seed=0)
    assert len(train) == 10 and len(test) == 10 and train.images.shape[2:] == (32, 32)
    assert np.array_equal(test.labels, [0] * 4 + [1] * 6)


def test_unknown_task_lists_choices():
    from bench.core.errors import UsageError

    with pytest.raises(UsageError, match="choose from: brick, grass, gravel"):
        DATASETS.get("textures").load("marble", None, 0)


def test_datasets_package_is_this_repository():
    import pathlib

    import bench.datasets as datasets

    repo = pathlib.Path(__file__).resolve().parents[2]
    assert pathlib.Path(datasets.__file__).resolve().is_relative_to(repo)
