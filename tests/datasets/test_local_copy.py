"""``bench data fetch NAME --from DIR``: local copies of the official files (fake files in the
real layouts: tiny idx files, gz and extracted, and a recompressed copy), and what ``bench data
verify`` says about them."""

import gzip
import shutil
import tarfile

import pytest

import bench.datasets.stored as stored
import bench.datasets.torchvision_sets as tv_sets
from bench.core.errors import DataMissingError
from bench.datasets import DATASETS
from bench.datasets.manage import fetch
from tests.conftest import invoke
from tests.datasets.fakes import fake_cifar, fake_mnist, patch_torchvision_md5s

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def official(tmp_path, monkeypatch, per_class=2, test_per_class=1):
    """Fake Fashion-MNIST files as a distributor ships them (flat folder, .gz and extracted),
    with torchvision's md5s and the manifest's counts pointed at them."""
    made = tmp_path / "made"
    sums = fake_mnist(made, name="fashion_mnist", folder="FashionMNIST", per_class=per_class,
                      test_per_class=test_per_class)
    patch_torchvision_md5s(monkeypatch, fashion=sums)
    counts = {"train": 10 * per_class, "test": 10 * test_per_class,
              **{f"train/{k}": per_class for k in range(10)},
              **{f"test/{k}": test_per_class for k in range(10)}}
    fake = {"name": "fashion_mnist", "counts": counts, "archives": []}
    monkeypatch.setattr(stored, "manifest", lambda name: fake)
    monkeypatch.setattr(tv_sets, "manifest", lambda name: fake)
    return made / "fashion_mnist" / "FashionMNIST" / "raw"


def copy(raw, dest, suffixes):
    dest.mkdir()
    for name in NAMES:
        for suffix in suffixes:
            shutil.copy(raw / f"{name}{suffix}", dest / f"{name}{suffix}")
    return dest


def states(report):
    return {c.item: c.state for c in report.checks}


def test_gz_copy_is_linked_and_decompressed_and_verifies_by_md5(tmp_path, monkeypatch):
    src = copy(official(tmp_path, monkeypatch), tmp_path / "src", [".gz"])
    root = tmp_path / "root"
    res = fetch(DATASETS.get("fashion_mnist"), root, local=src)
    raw = root / "fashion_mnist" / "FashionMNIST" / "raw"
    assert "4 file(s) linked" in res.message and "4 decompressed" in res.message
    for name in NAMES:
        assert (raw / f"{name}.gz").is_symlink()
        assert (raw / f"{name}.gz").resolve() == (src / f"{name}.gz").resolve()
        assert (raw / name).is_file() and not (raw / name).is_symlink()
        assert (raw / name).read_bytes() == gzip.decompress((src / f"{name}.gz").read_bytes())
    report = DATASETS.get("fashion_mnist").verify(root)
    got = states(report)
    assert report.ok and all(got[f"{n}.gz"] == "ok" for n in NAMES)
    assert got["train-images-idx3-ubyte header"] == "ok" and got["train/3"] == "ok"
    train, test = DATASETS.get("fashion_mnist").load("3", root, seed=0)
    assert len(train) == 2 and len(test) == 10


def test_extracted_copy_is_only_linked_and_content_checked(tmp_path, monkeypatch):
    src = copy(official(tmp_path, monkeypatch), tmp_path / "src", [""])
    root = tmp_path / "root"
    res = fetch(DATASETS.get("fashion_mnist"), root, local=src)
    raw = root / "fashion_mnist" / "FashionMNIST" / "raw"
    assert "0 decompressed" in res.message
    assert all((raw / n).is_symlink() for n in NAMES)
    assert not any((raw / f"{n}.gz").exists() for n in NAMES)
    report = DATASETS.get("fashion_mnist").verify(root)
    got = states(report)
    assert report.ok and got["t10k-labels-idx1-ubyte.gz"] == "unknown"
    assert got["t10k-images-idx3-ubyte header"] == "ok"


def test_recompressed_copy_is_not_called_a_mismatch_when_the_content_checks_pass(
        tmp_path, monkeypatch, cli, results):
    raw = official(tmp_path, monkeypatch)
    src = tmp_path / "debian"
    src.mkdir()
    for name in NAMES:  # same content, other archive bytes (level and timestamp)
        data = (raw / name).read_bytes()
        (src / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1, mtime=12345))
    root = tmp_path / "root"
    fetch(DATASETS.get("fashion_mnist"), root, local=src)
    report = DATASETS.get("fashion_mnist").verify(root)
    got = states(report)
    assert report.ok and all(got[f"{n}.gz"] == "recompressed" for n in NAMES)
    assert "mismatch" not in got.values()
    assert any("every count, per-class count and shape check passed" in n for n in report.notes)
    assert "4 archive(s) recompressed (content checked instead)" in report.summary()
    res = invoke(cli, results, "data", "verify", "fashion_mnist", data_root=root)
    assert res.exit_code == 0 and "recompressed" in res.output and "mismatch" not in res.output

    # the same copy with a class short: the note says the content checks did NOT all pass
    labels = root / "fashion_mnist" / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    body = bytearray(labels.read_bytes())
    body[8] = (body[8] + 1) % 10
    labels.write_bytes(bytes(body))
    (src / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(body), mtime=1))
    report = DATASETS.get("fashion_mnist").verify(root)
    assert not report.ok and "mismatch" in states(report).values()
    assert any("NOT every content check passed" in n for n in report.notes)


def test_gz_whose_content_differs_from_the_extracted_file_is_a_mismatch(tmp_path, monkeypatch):
    src = copy(official(tmp_path, monkeypatch), tmp_path / "src", [".gz", ""])
    root = tmp_path / "root"
    fetch(DATASETS.get("fashion_mnist"), root, local=src)
    plain = src / "t10k-images-idx3-ubyte"
    body = bytearray(plain.read_bytes())
    body[-1] ^= 0xFF  # the linked extracted file now differs from the official archive
    plain.write_bytes(bytes(body))
    got = {c.item: c for c in DATASETS.get("fashion_mnist").verify(root).checks}
    check = got["t10k-images-idx3-ubyte.gz"]
    assert check.state == "mismatch" and "content differs" in check.found


def test_truncated_idx_file_fails_its_header_check(tmp_path, monkeypatch):
    src = copy(official(tmp_path, monkeypatch), tmp_path / "src", [""])
    (src / "train-images-idx3-ubyte").write_bytes(
        (src / "train-images-idx3-ubyte").read_bytes()[:-5])
    root = tmp_path / "root"
    fetch(DATASETS.get("fashion_mnist"), root, local=src)
    got = {c.item: c for c in DATASETS.get("fashion_mnist").verify(root).checks}
    assert got["train-images-idx3-ubyte header"].state == "mismatch"
    assert "bytes instead of" in got["train-images-idx3-ubyte header"].found


def test_missing_files_and_bad_combinations_are_one_line_errors(tmp_path, monkeypatch, cli,
                                                                 results):
    src = copy(official(tmp_path, monkeypatch), tmp_path / "src", [".gz"])
    (src / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataMissingError, match="neither t10k-labels-idx1-ubyte nor"):
        fetch(DATASETS.get("fashion_mnist"), tmp_path / "root", local=src)
    assert not (tmp_path / "root" / "fashion_mnist").exists()  # nothing half-done
    res = invoke(cli, results, "data", "fetch", "fashion_mnist", "--from", str(src),
                 "--url", "http://127.0.0.1:9/x.tar", data_root=tmp_path / "root")
    assert res.exit_code != 0 and res.output.strip().startswith("bench: error: --from")
    res = invoke(cli, results, "data", "fetch", "mvtec", "--from", str(src),
                 data_root=tmp_path / "root")
    assert res.exit_code != 0 and "--from is not supported" in res.output


def test_cifar_archive_or_batches(tmp_path, monkeypatch):
    sums = fake_cifar(tmp_path / "made", per_class=1, test_per_class=1)
    patch_torchvision_md5s(monkeypatch, cifar=sums)
    batches = tmp_path / "made" / "cifar10" / "cifar-10-batches-py"
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(batches, arcname="cifar-10-batches-py")
    ds = DATASETS.get("cifar10")
    res = fetch(ds, tmp_path / "root1", local=archive_dir)
    assert "md5 differs from the official archive" in res.message  # a fake archive
    assert ds.load("4", tmp_path / "root1", seed=0)[0].images.shape[0] == 1
    got = states(ds.verify(tmp_path / "root1"))
    assert got["data_batch_1"] == "ok" and got["test_batch shape"] == "ok"

    res = fetch(ds, tmp_path / "root2", local=batches.parent)  # the folder above the batches
    linked = tmp_path / "root2" / "cifar10" / "cifar-10-batches-py" / "data_batch_3"
    assert "7 batch file(s) linked" in res.message and linked.is_symlink()
    assert ds.load("4", tmp_path / "root2", seed=0)[1].images.shape[0] == 10
