"""VisA, BTAD, MPDD, MVTec AD 2 and MVTec LOCO on fake trees in their real layouts: index,
load, counts against the manifests, fetch (loopback server or manual steps), and one run."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import bench.datasets.stored as stored
from bench.core.errors import DataCorruptError, DataMissingError
from bench.datasets import DATASETS
from bench.datasets.base import InputSpec
from bench.datasets.btad import index_btad
from bench.datasets.mvtec import INDEX_COLUMNS
from bench.datasets.mvtec_ad2 import index_mvtec_ad2
from bench.datasets.mvtec_loco import index_mvtec_loco
from bench.datasets.visa import index_visa
from bench.testing import check_dataset
from tests.conftest import invoke
from tests.datasets.fakes import (
    fake_btad,
    fake_mvtec,
    fake_mvtec_ad2,
    fake_mvtec_loco,
    fake_visa,
)
from tests.datasets.loopback import serve

NEW = ("visa", "btad", "mpdd", "mvtec_ad2", "mvtec_loco")


def _one_line(res) -> str:
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("bench: error:"), res.output
    return lines[0]


def test_registered_with_their_categories():
    assert len(DATASETS.get("visa").tasks()) == 12 and "pipe_fryum" in DATASETS.get("visa").tasks()
    assert DATASETS.get("btad").tasks() == ["01", "02", "03"]
    assert DATASETS.get("mpdd").tasks() == ["bracket_black", "bracket_brown", "bracket_white",
                                            "connector", "metal_plate", "tubes"]
    assert len(DATASETS.get("mvtec_ad2").tasks()) == 8
    loco = DATASETS.get("mvtec_loco").tasks()
    assert len(loco) == 15 and loco[:3] == ["breakfast_box", "breakfast_box/logical",
                                           "breakfast_box/structural"]
    for name in NEW:
        ds = DATASETS.get(name)
        assert ds.family == "mvtec" and ds.default_size == 128
        assert set(stored.manifest(name)["counts"]), name  # a manifest ships for each


# ----------------------------------------------------------------------------------- VisA


def test_visa_index_reads_the_split_csv_directly(tmp_path):
    base = fake_visa(tmp_path, ("candle", "pcb1"), n_train=4, n_good=2, n_bad=3)
    index = index_visa(base, "candle")
    assert tuple(index.columns) == INDEX_COLUMNS
    assert (index["split"] == "train").sum() == 4 and (index["split"] == "test").sum() == 5
    assert (index.loc[index["split"] == "train", "label"] == 0).all()
    bad = index[index["label"] == 1]
    assert len(bad) == 3 and bad["mask_path"].str.endswith(".png").all()
    assert bad["path"].str.contains("candle/Data/Images/Anomaly/").all()
    assert index.loc[index["label"] == 0, "mask_path"].isna().all()
    assert not index["path"].str.contains("pcb1").any()
    assert not (tmp_path / "visa" / "visa_pytorch").exists()  # nothing copied


def test_visa_masks_are_nonzero_class_numbers(tmp_path):
    fake_visa(tmp_path, ("candle",), n_bad=3)
    train, test = DATASETS.get("visa").load("candle", tmp_path, seed=0, spec=InputSpec(size=24))
    assert len(train) == 5 and train.masks is None
    anomalous = test.labels == 1
    assert test.masks is not None and test.masks[~anomalous].sum() == 0
    # the fake masks hold 1, 2, 3 per defect pixel: each is a full-strength defect
    assert (test.masks[anomalous].flatten(1).amax(1) == 1).all()
    assert test.ids[0].startswith("visa/candle/Data/Images/")
    # and at the masks' own resolution (the standard pixel metrics): non-zero is a defect too
    native = test.native_masks
    assert native is not None
    assert all(native[i].any() == bool(anomalous[i]) for i in range(len(test)))


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("train,normal,candle/Data/Images/Normal/0000.JPG",
                         "train,anomaly,candle/Data/Images/Normal/0000.JPG"),
     "line 2: an anomaly in the training split"),
    (lambda t: t.replace("Normal/0001.JPG", "Normal/0999.JPG"), "0999.JPG not found"),
    (lambda t: t.replace(",normal,", ",okay,", 1), "label must be normal/anomaly"),
    (lambda t: t.replace("object,split", "thing,split"), "missing object"),
])
def test_visa_split_file_errors_name_the_line(tmp_path, edit, message):
    base = fake_visa(tmp_path, ("candle",))
    csv = base / "split_csv" / "1cls.csv"
    csv.write_text(edit(csv.read_text()))
    with pytest.raises((DataCorruptError, DataMissingError), match=message):
        DATASETS.get("visa").load("candle", tmp_path, seed=0)


def test_visa_counts_against_the_manifest(tmp_path):
    fake_visa(tmp_path, ("candle",), n_train=3, n_good=1, n_bad=2, wrapper="VisA")
    ds = DATASETS.get("visa")
    assert ds.find(tmp_path) == tmp_path / "visa" / "VisA"
    counts = ds.count(ds.find(tmp_path))
    assert counts["candle/normal"] == 4 and counts["candle/anomaly"] == 2
    assert counts["candle/masks"] == 2 and counts["pcb1/normal"] == 0
    states = {c.item: c.state for c in ds.verify(tmp_path).checks}
    assert states["candle/normal"] == "mismatch"      # 1,000 in the distributors' table
    assert states["pcb1/normal"] == "missing"
    assert states["candle/masks"] == "unknown"        # no source states the mask counts


def _tar(folder: Path, mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for entry in sorted(folder.iterdir()):
            tf.add(entry, arcname=entry.name)
    return buf.getvalue()


def _zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return buf.getvalue()


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A loopback server whose archives replace the manifests' (name -> archive file name)."""
    folder = tmp_path / "site"
    folder.mkdir()
    real = stored.manifest
    served: dict[str, dict] = {}

    def manifest(name):
        return served.get(name) or real(name)

    monkeypatch.setattr(stored, "manifest", manifest)
    with serve(folder) as url:
        def publish(name: str, filename: str, data: bytes) -> Path:
            (folder / filename).write_bytes(data)
            served[name] = {**real(name), "archives": [{
                "filename": filename, "url": f"{url}/{filename}",
                "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}]}
            return folder / filename
        yield publish


def test_visa_downloads_without_a_licence_flag(cli, results, tmp_path, site):
    fake_visa(tmp_path / "src", ("candle",))
    site("visa", "VisA_20220922.tar", _tar(tmp_path / "src" / "visa"))
    root = tmp_path / "data"
    res = invoke(cli, results, "data", "fetch", "visa", data_root=root)
    assert res.exit_code == 0, res.output
    assert "sha256 ok" in res.output and (root / "visa/split_csv/1cls.csv").is_file()
    again = invoke(cli, results, "data", "fetch", "visa", data_root=root)
    assert again.exit_code == 0 and "already in" in again.output  # not downloaded twice
    status = invoke(cli, results, "data", "status", data_root=root)
    assert "visa" in status.output and "found" in status.output


def test_corrupted_visa_download_is_rejected(cli, results, tmp_path, site):
    fake_visa(tmp_path / "src", ("candle",))
    archive = site("visa", "VisA_20220922.tar", _tar(tmp_path / "src" / "visa"))
    data = bytearray(archive.read_bytes())
    data[100] ^= 0xFF
    archive.write_bytes(bytes(data))
    root = tmp_path / "data"
    res = invoke(cli, results, "data", "fetch", "visa", data_root=root)
    assert res.exit_code == 1 and "sha256" in _one_line(res)
    assert not any(p.is_file() for p in (root / "visa").rglob("*"))


# ----------------------------------------------------------------------------------- BTAD


def test_btad_pairs_masks_by_stem_across_extensions(tmp_path):
    base = fake_btad(tmp_path, ("01", "03"), n_train=3, n_good=2, n_bad=2)
    for cat, ext, mext in (("01", ".bmp", ".png"), ("03", ".png", ".bmp")):
        index = index_btad(base / cat)
        assert list(index["defect"]) == ["ok"] * 3 + ["ko"] * 2 + ["ok"] * 2
        bad = index[index["label"] == 1]
        assert bad["path"].str.endswith(ext).all() and bad["mask_path"].str.endswith(mext).all()
        for img, mask in zip(bad["path"], bad["mask_path"], strict=True):
            assert Path(img).stem == Path(mask).stem
    train, test = DATASETS.get("btad").load("01", tmp_path, seed=0, spec=InputSpec(size=24))
    assert len(train) == 3 and list(test.labels) == [1, 1, 0, 0]
    assert (test.masks[:2].flatten(1).amax(1) == 1).all() and test.masks[2:].sum() == 0


def test_btad_orphan_mask_and_missing_product(tmp_path):
    base = fake_btad(tmp_path, ("01",))
    (base / "01/test/ko/0001.bmp").unlink()
    with pytest.raises(DataCorruptError, match="0001.png has no test image"):
        index_btad(base / "01")
    with pytest.raises(DataMissingError, match="btad category 02 not found: .*02/train/ok"):
        DATASETS.get("btad").load("02", tmp_path, seed=0)


def test_btad_needs_the_licence_flag_then_downloads(cli, results, tmp_path, site):
    fake_btad(tmp_path / "src", ("02",))
    site("btad", "btad.zip", _zip(tmp_path / "src" / "btad"))
    root = tmp_path / "data"
    steps = invoke(cli, results, "data", "fetch", "btad", data_root=root)
    assert steps.exit_code == 1 and "--accept-license" in steps.output
    assert not (root / "btad").exists()
    res = invoke(cli, results, "data", "fetch", "btad", "--accept-license", data_root=root)
    assert res.exit_code == 0, res.output
    assert (root / "btad/BTech_Dataset_transformed/02/train/ok").is_dir()
    ver = invoke(cli, results, "data", "verify", "btad", data_root=root)
    assert ver.exit_code == 0 and "unchecked (unknown)" in ver.output  # no confirmed counts


# ------------------------------------------------------------------------------------ MPDD


def test_mpdd_reads_the_mvtec_layout_and_prints_manual_steps(cli, results, tmp_path):
    root = tmp_path / "data"
    steps = invoke(cli, results, "data", "fetch", "mpdd", data_root=root)
    assert steps.exit_code == 1 and "github.com/stepanje/MPDD" in steps.output
    assert "--accept-license" not in steps.output
    src = fake_mvtec(tmp_path / "src", categories=("tubes", "connector"))
    archive = tmp_path / "mpdd.tar.gz"
    archive.write_bytes(_tar(src, "w:gz"))
    res = invoke(cli, results, "data", "fetch", "mpdd", "--archive", str(archive),
                 data_root=root)
    assert res.exit_code == 0 and "checksum unknown" in res.output
    train, test = DATASETS.get("mpdd").load("tubes", root, seed=0, spec=InputSpec(size=24))
    assert len(train) == 5 and test.masks is not None and test.labels.sum() == 4
    assert test.ids[0].startswith("mpdd/tubes/test/")
    counts = DATASETS.get("mpdd").count(root / "mpdd")
    assert counts["tubes/test/defective"] == 4 and counts["tubes/ground_truth"] == 4
    assert counts["metal_plate/train/good"] == 0


def test_mpdd_fetch_honours_url(cli, results, tmp_path):
    """Issue 25 item 11: ``--url`` was ignored (the manual steps printed); now the archive at
    that address is downloaded, checked against --sha256 and unpacked."""
    site = tmp_path / "site"
    site.mkdir()
    data = _tar(fake_mvtec(tmp_path / "src", categories=("tubes",)), "w:gz")
    (site / "mpdd.tar.gz").write_bytes(data)
    root = tmp_path / "data"
    with serve(site) as url:
        res = invoke(cli, results, "data", "fetch", "mpdd", "--url", f"{url}/mpdd.tar.gz",
                     "--sha256", hashlib.sha256(data).hexdigest(), data_root=root)
        assert res.exit_code == 0, res.output
        assert "downloaded mpdd.tar.gz" in res.output
        assert DATASETS.get("mpdd").count(root / "mpdd")["tubes/test/defective"] == 4
        unchecked = invoke(cli, results, "data", "fetch", "mpdd", "--url", f"{url}/mpdd.tar.gz",
                           data_root=tmp_path / "other")
    assert unchecked.exit_code == 2 and "--sha256" in unchecked.output  # never unchecked


# ------------------------------------------------------------------------------ MVTec AD 2


def test_mvtec_ad2_uses_the_public_test_set_only(tmp_path):
    base = fake_mvtec_ad2(tmp_path, ("vial",), n_train=4, n_val=3, n_good=2, n_bad=3)
    index = index_mvtec_ad2(base / "vial")
    assert (index["split"] == "train").sum() == 4  # validation/good is not training data
    assert not index["path"].str.contains("validation|test_private").any()
    bad = index[index["label"] == 1]
    assert len(bad) == 3 and bad["mask_path"].str.endswith("_overexposed_mask.png").all()
    _, test = DATASETS.get("mvtec_ad2").load("vial", tmp_path, seed=0, spec=InputSpec(size=24))
    assert list(test.labels) == [1, 1, 1, 0, 0] and test.masks[3:].sum() == 0
    counts = DATASETS.get("mvtec_ad2").count(base)
    assert counts["vial/validation/good"] == 3 and counts["vial/test_public/ground_truth"] == 3
    (base / "vial/test_public/ground_truth/bad/001_overexposed_mask.png").unlink()
    with pytest.raises(DataCorruptError, match="no mask for test image .*001_overexposed.png"):
        index_mvtec_ad2(base / "vial")


def test_mvtec_ad2_fetch_prints_the_form_steps(cli, results, tmp_path):
    res = invoke(cli, results, "data", "fetch", "mvtec_ad2", data_root=tmp_path)
    assert res.exit_code == 1 and "mvtec-ad-2" in res.output and "CC BY-NC-SA" in res.output
    assert "--archive" in res.output and not (tmp_path / "mvtec_ad2").exists()


# ---------------------------------------------------------------------------- MVTec LOCO


def test_mvtec_loco_tasks_split_logical_and_structural(tmp_path):
    base = fake_mvtec_loco(tmp_path, ("pushpins",), n_train=4, n_good=3, n_logical=2,
                           n_structural=1)
    ds = DATASETS.get("mvtec_loco")
    sizes = {}
    for task in ("pushpins", "pushpins/logical", "pushpins/structural"):
        train, test = ds.load(task, tmp_path, seed=0, spec=InputSpec(size=24))
        assert len(train) == 4 and test.masks is None  # image level
        sizes[task] = (int((test.labels == 0).sum()), int(test.labels.sum()))
    assert sizes == {"pushpins": (3, 3), "pushpins/logical": (3, 2),
                     "pushpins/structural": (3, 1)}
    index = index_mvtec_loco(base / "pushpins", "logical")
    bad = index[index["label"] == 1]
    assert set(bad["defect"]) == {"logical_anomalies"} and bad["mask_path"].isna().all()
    assert bad["mask_dir"].str.endswith("ground_truth/logical_anomalies/000").iloc[0]
    assert check_dataset("mvtec_loco", root=tmp_path, task="pushpins/structural").ok


def test_mvtec_loco_missing_mask_folder_and_counts(tmp_path):
    base = fake_mvtec_loco(tmp_path, ("pushpins",), n_train=4, n_val=2)
    ds = DATASETS.get("mvtec_loco")
    counts = ds.count(base)
    assert (counts["train"], counts["validation"], counts["test"]) == (4, 2, 5)
    assert counts["ground_truth"] == 3
    states = {c.item: c.state for c in ds.verify(tmp_path).checks}
    assert states["train"] == "mismatch" and states["pushpins/train/good"] == "unknown"
    import shutil

    shutil.rmtree(base / "pushpins/ground_truth/structural_anomalies/000")
    with pytest.raises(DataCorruptError, match="no masks for test image .*structural_anomalies"):
        ds.load("pushpins/structural", tmp_path, seed=0)
    ds.load("pushpins/logical", tmp_path, seed=0)  # the other variant still loads


def test_mvtec_loco_fetch_with_licence_from_loopback(cli, results, tmp_path, site):
    fake_mvtec_loco(tmp_path / "src", ("juice_bottle",))
    site("mvtec_loco", "mvtec_loco_anomaly_detection.tar.xz",
         _tar(tmp_path / "src" / "mvtec_loco", "w:xz"))
    root = tmp_path / "data"
    steps = invoke(cli, results, "data", "fetch", "mvtec_loco", data_root=root)
    assert steps.exit_code == 1 and "mvtec-loco" in steps.output
    res = invoke(cli, results, "data", "fetch", "mvtec_loco", "--accept-license",
                 data_root=root)
    assert res.exit_code == 0 and "sha256 ok" in res.output, res.output
    assert (root / "mvtec_loco/juice_bottle/ground_truth/logical_anomalies/000/001.png").is_file()


# ------------------------------------------------------------------------- contract, a run


@pytest.mark.parametrize("name,make", [
    ("visa", lambda root: fake_visa(root, ("candle",))),
    ("btad", lambda root: fake_btad(root, ("01",))),
    ("mpdd", lambda root: fake_mvtec(root, categories=("bracket_black",)).rename(root / "mpdd")),
    ("mvtec_ad2", lambda root: fake_mvtec_ad2(root, ("can",))),
    ("mvtec_loco", lambda root: fake_mvtec_loco(root, ("pushpins",))),
])
def test_contract_on_fake_trees(name, make, tmp_path):
    make(tmp_path)
    task = {"visa": "candle", "btad": "01", "mpdd": "bracket_black", "mvtec_ad2": "can",
            "mvtec_loco": "pushpins"}[name]
    report = check_dataset(name, root=tmp_path, task=task)
    assert report.ok, report.summary()


SUITE = """
name: zoo
seeds: [0]
datasets:
  visa: [candle]
  btad: ["01"]
  mpdd: [tubes]
  mvtec_ad2: [can]
  mvtec_loco: [pushpins, pushpins/logical]
methods:
  padim: {backbone: resnet18, backbone_weights: random, image_size: 32, crop: 32}
"""


def test_one_run_over_every_new_layout(cli, results, tmp_path):
    root = tmp_path / "data"
    fake_visa(root, ("candle",))
    fake_btad(root, ("01",))
    fake_mvtec(tmp_path / "m", categories=("tubes",)).rename(root / "mpdd")
    fake_mvtec_ad2(root, ("can",))
    fake_mvtec_loco(root, ("pushpins",))
    suite = tmp_path / "zoo.yaml"
    suite.write_text(SUITE)
    res = invoke(cli, results, "run", "--suite", str(suite), "--all", data_root=root)
    assert res.exit_code == 0, res.output
    recs = [json.loads(p.read_text()) for p in (results / "runs" / "zoo").glob("*.json")]
    by = {(r["job"]["dataset"], r["job"]["task"]): r for r in recs}
    assert len(recs) == 6 and all(r["status"] == "ok" for r in recs)
    for key in (("visa", "candle"), ("btad", "01"), ("mpdd", "tubes"), ("mvtec_ad2", "can")):
        assert "pixel_auroc" in by[key]["metrics"], key  # masks reach the pixel metrics
    loco = by[("mvtec_loco", "pushpins/logical")]
    assert "pixel_auroc" not in loco["metrics"] and "image_auroc" in loco["metrics"]
    assert loco["data"]["test_anomalous"] == 2
    assert by[("visa", "candle")]["data"]["test"] == 4
    assert np.isfinite(by[("visa", "candle")]["metrics"]["image_auroc"])
