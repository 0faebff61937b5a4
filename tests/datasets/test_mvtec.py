import numpy as np
import pytest
import torch

from bench.core.errors import DataCorruptError, DataMissingError, UsageError
from bench.datasets import DATASETS
from bench.datasets.base import InputSpec
from bench.datasets.mvtec import CATEGORIES, OBJECTS, TEXTURES, index_mvtec
from tests.datasets.fakes import fake_mvtec, fake_mvtec_category


def test_categories_are_the_fifteen():
    assert len(CATEGORIES) == 15 and set(CATEGORIES) == set(TEXTURES) | set(OBJECTS)
    assert DATASETS.get("mvtec").tasks() == list(CATEGORIES)
    assert CATEGORIES[:3] == ("bottle", "hazelnut", "capsule")  # the paper's table order


def test_index_is_sorted_and_pairs_masks_by_stem(tmp_path):
    fake_mvtec_category(tmp_path / "bottle", n_train=4, n_good=2, defects={"crack": 2,
                                                                            "broken": 1})
    index = index_mvtec(tmp_path / "bottle")
    assert list(index.columns) == ["path", "split", "label", "defect", "mask_path"]
    assert (index["split"] == "train").sum() == 4 and (index["split"] == "test").sum() == 5
    bad = index[index["label"] == 1]
    assert bad["mask_path"].notna().all() and set(bad["defect"]) == {"crack", "broken"}
    for img, mask in zip(bad["path"], bad["mask_path"], strict=True):
        assert mask.endswith(img.rsplit("/", 2)[1] + "/" + img.rsplit("/", 1)[1][:-4]
                             + "_mask.png")
    assert index.loc[index["label"] == 0, "mask_path"].isna().all()
    assert list(index["defect"][index["split"] == "test"]) == sorted(
        index["defect"][index["split"] == "test"])


def test_missing_mask_names_both_files(tmp_path):
    fake_mvtec_category(tmp_path / "cat", defects={"crack": 2})
    (tmp_path / "cat/ground_truth/crack/001_mask.png").unlink()
    with pytest.raises(DataCorruptError) as err:
        index_mvtec(tmp_path / "cat")
    assert "test/crack/001.png" in str(err.value) and "001_mask.png" in str(err.value)


def test_orphan_mask_names_both_files(tmp_path):
    fake_mvtec_category(tmp_path / "cat", defects={"crack": 2})
    (tmp_path / "cat/test/crack/000.png").rename(tmp_path / "cat/test/crack/005.png")
    with pytest.raises(DataCorruptError) as err:
        index_mvtec(tmp_path / "cat")
    assert "005.png" in str(err.value) and "005_mask.png" in str(err.value)


def test_load_detection_and_localization_in_one_job(tmp_path):
    fake_mvtec(tmp_path, categories=("bottle",), n_train=5, n_good=3,
               defects={"broken": 2, "crack": 2})
    ds = DATASETS.get("mvtec")
    train, test = ds.load("bottle", tmp_path, seed=0)
    assert len(train) == 5 and train.masks is None and (train.labels == 0).all()
    # sorted by folder: broken, crack, good
    assert list(test.labels) == [1, 1, 1, 1, 0, 0, 0]
    assert test.images.shape[1:] == (3, 128, 128) and test.masks.shape == (7, 128, 128)
    normal = torch.from_numpy(test.labels == 0)
    assert test.masks[normal].sum() == 0
    assert (test.masks[~normal].flatten(1).amax(1) == 1).all()
    assert test.ids[0].startswith("mvtec/bottle/test/")
    # the folders are untouched: test/good is still there
    assert (tmp_path / "mvtec/bottle/test/good").is_dir()
    small, small_test = ds.load("bottle", tmp_path, seed=0, spec=InputSpec(size=32))
    assert small_test.masks.shape == (7, 32, 32) and small.native_size == (24, 24)


def test_corrupt_image_names_the_file(tmp_path):
    fake_mvtec(tmp_path, categories=("bottle",))
    bad = tmp_path / "mvtec/bottle/train/good/001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataCorruptError, match="001.png"):
        DATASETS.get("mvtec").load("bottle", tmp_path, seed=0)


def test_unknown_and_missing_category(tmp_path):
    fake_mvtec(tmp_path, categories=("bottle",))
    ds = DATASETS.get("mvtec")
    with pytest.raises(UsageError, match="choose from: bottle, hazelnut"):
        ds.load("bottel", tmp_path, seed=0)
    with pytest.raises(DataMissingError, match="screw/train/good"):
        ds.load("screw", tmp_path, seed=0)


def test_mvtec_accepts_a_wrapper_folder_and_counts(tmp_path):
    fake_mvtec_category(tmp_path / "mvtec/mvtec_anomaly_detection/grid", n_train=3, n_good=1,
                        defects={"bent": 2})
    ds = DATASETS.get("mvtec")
    train, _ = ds.load("grid", tmp_path, seed=0)
    assert len(train) == 3
    counts = ds.count(ds.find(tmp_path))
    assert counts["grid/train/good"] == 3 and counts["grid/test/defective"] == 2
    assert counts["grid/ground_truth"] == 2 and counts["bottle/train/good"] == 0
    report = ds.verify(tmp_path)
    states = {c.item: c.state for c in report.checks}
    assert states["grid/train/good"] == "mismatch" and states["bottle/train/good"] == "missing"


def test_folder_dataset_by_data_root_and_by_path(tmp_path):
    fake_mvtec_category(tmp_path / "folder" / "widget", n_train=4, defects={"dent": 2})
    fake_mvtec_category(tmp_path / "folder" / "gadget", n_train=3, defects={"scratch": 1},
                        masks=False)
    ds = DATASETS.get("folder")
    assert ds.family == "mvtec" and ds.tasks_in(tmp_path) == ["gadget", "widget"]
    train, test = ds.load("widget", tmp_path, seed=0)
    assert len(train) == 4 and test.masks is not None
    _, no_masks = ds.load("gadget", tmp_path, seed=0)
    assert no_masks.masks is None and no_masks.labels.sum() == 1
    by_path = DATASETS.get(f"folder:{tmp_path / 'folder'}")
    assert f"folder:{tmp_path / 'folder'}" in DATASETS
    assert by_path.tasks_in(None) == ["gadget", "widget"]
    t2, _ = by_path.load("widget", None, seed=0)
    assert torch.equal(t2.images, train.images)
    assert t2.ids[0].startswith(f"folder:{tmp_path / 'folder'}/widget/train/good/")
    with pytest.raises(DataMissingError, match="categories there: gadget, widget"):
        ds.load("nothing", tmp_path, seed=0)
    with pytest.raises(UsageError, match="absolute"):
        DATASETS.get("folder:relative/path")


def test_missing_folder_root_is_one_line(tmp_path):
    with pytest.raises(DataMissingError) as err:
        DATASETS.get("folder").check_available(tmp_path)
    assert str(tmp_path / "folder") in str(err.value) and "\n" not in str(err.value)


def test_masks_are_soft_after_resize_and_binary_at_native(tmp_path):
    fake_mvtec(tmp_path, categories=("bottle",), defects={"crack": 1}, n_good=1)
    _, test = DATASETS.get("mvtec").load("bottle", tmp_path, seed=0, spec=InputSpec(size=24))
    assert set(np.unique(test.masks.numpy())) <= {0.0, 1.0}


def test_one_job_scores_detection_and_both_pixel_protocols(tmp_path):
    from bench.methods.base import Scores
    from bench.methods.mkd import MKD
    from bench.run.execute import score_metrics

    fake_mvtec(tmp_path, categories=("bottle",), defects={"crack": 2, "hole": 1}, n_good=2)
    _, test = DATASETS.get("mvtec").load("bottle", tmp_path, seed=0, spec=InputSpec(size=32))
    maps = test.masks.numpy().copy()
    scores = Scores(image=test.labels.astype(float), maps=maps,
                    extra_maps={"mkd_code": maps})
    metrics, protocol = score_metrics(test, scores, MKD.extra_map_protocols)
    assert metrics["image_auroc"] == 1.0 and metrics["pixel_auroc"] == pytest.approx(1.0)
    assert protocol is not None and protocol["mkd_protocol_maps"] == "method"
