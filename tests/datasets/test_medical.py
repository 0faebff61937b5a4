import numpy as np
import pytest
import torch

from bench.core.errors import DataCorruptError, DataMissingError
from bench.datasets import DATASETS
from bench.datasets.medical import held_out_split
from tests.datasets.fakes import fake_brainmri, fake_headct, fake_oct


@pytest.fixture(scope="module")
def headct_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("headct")
    fake_headct(root)
    return root


def test_headct_split_sizes_and_labels(headct_root):
    ds = DATASETS.get("headct")
    assert ds.tasks() == ["normal"] and ds.default_size == 128
    train, test = ds.load("normal", headct_root, seed=0)
    assert len(train) == 90 and (train.labels == 0).all()
    assert len(test) == 110 and test.labels.sum() == 100 and (test.labels == 0).sum() == 10
    assert not set(train.ids) & set(test.ids)
    assert train.images.shape[1:] == (3, 128, 128)
    # labels come from labels.csv: hemorrhage ids are 000..099 in the fake
    anomalous = [i for i, lab in zip(test.ids, test.labels, strict=True) if lab == 1]
    assert all(int(i[-7:-4]) < 100 for i in anomalous)
    assert all(int(i[-7:-4]) >= 100 for i in train.ids)


def test_headct_split_is_deterministic_per_seed_and_differs_across_seeds(headct_root):
    ds = DATASETS.get("headct")
    a, ta = ds.load("normal", headct_root, seed=3)
    b, tb = ds.load("normal", headct_root, seed=3)
    c, _ = ds.load("normal", headct_root, seed=4)
    assert a.ids == b.ids and ta.ids == tb.ids and torch.equal(a.images, b.images)
    assert set(a.ids) != set(c.ids)


def test_held_out_split_is_pure():
    tr, held = held_out_split(100, 0, "headct")
    _tr2, held2 = held_out_split(100, 0, "headct")
    assert np.array_equal(held, held2) and len(held) == 10 and len(tr) == 90
    assert not set(tr) & set(held)
    _, other = held_out_split(100, 0, "brainmri")
    assert not np.array_equal(held, other)  # salted by dataset name
    seeds = {tuple(held_out_split(100, s, "headct")[1]) for s in range(20)}
    assert len(seeds) == 20


def test_headct_bad_labels_and_missing_images(tmp_path):
    base = fake_headct(tmp_path, n_normal=12, n_hemorrhage=3)
    ds = DATASETS.get("headct")
    assert ds.count(base) == {"images": 15, "normal": 12, "hemorrhage": 3}
    (base / "head_ct/head_ct/013.png").unlink()
    with pytest.raises(DataMissingError, match="013.png"):
        ds.load("normal", tmp_path, seed=0)
    (base / "labels.csv").write_text("id, hemorrhage\n0,2\n")
    with pytest.raises(DataCorruptError, match="0 or 1"):
        ds.load("normal", tmp_path, seed=0)


def test_brainmri_split_sizes_mixed_files(tmp_path):
    fake_brainmri(tmp_path)
    ds = DATASETS.get("brainmri")
    assert ds.default_size == 256
    train, test = ds.load("normal", tmp_path, seed=1)
    assert len(train) == 88 and len(test) == 165 and test.labels.sum() == 155
    assert train.images.shape[1:] == (3, 256, 256)
    assert ds.count(ds.find(tmp_path)) == {"no": 98, "yes": 155}
    assert ds.verify(tmp_path).ok


def test_brainmri_prefers_the_shallow_copy(tmp_path):
    base = fake_brainmri(tmp_path, n_no=12, n_yes=2)
    fake_brainmri(base / "brain_tumor_dataset", n_no=11, n_yes=1)  # .../brainmri/brainmri
    assert DATASETS.get("brainmri").find(tmp_path) == base


def test_oct_trains_on_normal_only(tmp_path):
    fake_oct(tmp_path, n_train=4, n_test=3)  # inside the Kaggle 'OCT2017 ' wrapper
    ds = DATASETS.get("retinal_oct")
    assert ds.tasks() == ["NORMAL"]
    train, test = ds.load("NORMAL", tmp_path, seed=0)
    assert len(train) == 4 and all("/train/NORMAL/" in i for i in train.ids)
    assert len(test) == 12 and test.labels.sum() == 9
    assert {i.split("/")[-2] for i, lab in zip(test.ids, test.labels, strict=True)
            if lab == 0} == {"NORMAL"}
    counts = ds.count(ds.find(tmp_path))
    assert counts["train/CNV"] == 4 and counts["test/NORMAL"] == 3
    report = ds.verify(tmp_path)
    states = {c.item: c.state for c in report.checks}
    assert states["train/CNV"] == "unknown" and states["test/CNV"] == "mismatch"


def test_oct_missing_split_message(tmp_path):
    fake_oct(tmp_path, wrapper="")
    import shutil
    shutil.rmtree(tmp_path / "retinal_oct" / "test")
    with pytest.raises(DataMissingError) as err:
        DATASETS.get("retinal_oct").check_available(tmp_path)
    assert "retinal_oct/{train,test}" in str(err.value)
    assert "bench data fetch retinal_oct" in str(err.value)
