import numpy as np
import pytest
import torch

from bench.core.errors import DataCorruptError, DataMissingError, UsageError
from bench.datasets import DATASETS
from bench.datasets.base import InputSpec
from tests.datasets.fakes import fake_cifar, fake_mnist, patch_torchvision_md5s


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_like_one_vs_rest(tmp_path, name, folder):
    fake_mnist(tmp_path, name=name, folder=folder, per_class=4, test_per_class=3)
    ds = DATASETS.get(name)
    assert ds.tasks() == [str(d) for d in range(10)] and ds.default_size == 32
    train, test = ds.load("3", tmp_path, seed=0)
    assert len(train) == 4 and (train.labels == 0).all()
    assert len(test) == 30 and test.labels.sum() == 27
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    assert train.native_size == (28, 28)
    # the three channels repeat the grey image
    assert torch.equal(train.images[:, 0], train.images[:, 2])
    # a different seed gives the same data (the split is the dataset's)
    again, _ = ds.load("3", tmp_path, seed=5)
    assert torch.equal(again.images, train.images) and again.ids == train.ids


def test_mnist_resize_matches_pil_bilinear(tmp_path):
    from PIL import Image
    from torchvision.datasets.mnist import read_image_file

    fake_mnist(tmp_path, per_class=2, test_per_class=1)
    train, _ = DATASETS.get("mnist").load("0", tmp_path, seed=0)
    raw = read_image_file(str(tmp_path / "mnist/MNIST/raw/train-images-idx3-ubyte")).numpy()
    want = np.asarray(Image.fromarray(raw[0]).resize((32, 32), Image.Resampling.BILINEAR))
    assert np.array_equal(train.images[0, 1].numpy(), want)


def test_cifar_uses_torchvision_md5_check(tmp_path, monkeypatch):
    sums = fake_cifar(tmp_path, per_class=3, test_per_class=2)
    patch_torchvision_md5s(monkeypatch, cifar=sums)
    ds = DATASETS.get("cifar10")
    train, test = ds.load("7", tmp_path, seed=0)
    assert len(train) == 3 and len(test) == 20 and test.labels.sum() == 18
    assert train.images.shape[1:] == (3, 32, 32)
    # native size, no resampling: equals the pickled CHW data
    import pickle
    rows = []
    for i in range(1, 6):
        with open(tmp_path / f"cifar10/cifar-10-batches-py/data_batch_{i}", "rb") as fh:
            b = pickle.load(fh)
        rows += [d for d, lab in zip(b["data"], b["labels"], strict=True) if lab == 7]
    assert np.array_equal(train.images.numpy().reshape(3, -1), np.stack(rows))
    # the paper's CIFAR preprocessing: 256 Lanczos then centre crop 224
    big, _ = ds.load("7", tmp_path, seed=0, spec=InputSpec(size=256, crop=224,
                                                           interpolation="lanczos"))
    assert big.images.shape[1:] == (3, 224, 224)
    # a damaged batch fails torchvision's md5 check and names the folder
    with open(tmp_path / "cifar10/cifar-10-batches-py/data_batch_2", "ab") as fh:
        fh.write(b"junk")
    with pytest.raises(DataCorruptError, match="cifar-10-batches-py|cifar10"):
        ds.load("7", tmp_path, seed=0)


def test_cifar_verify_reports_md5_mismatch(tmp_path, monkeypatch):
    sums = fake_cifar(tmp_path, per_class=1, test_per_class=1)
    patch_torchvision_md5s(monkeypatch, cifar=sums)
    ds = DATASETS.get("cifar10")
    report = ds.verify(tmp_path)
    states = {c.item: c.state for c in report.checks}
    assert states["data_batch_1"] == "ok" and states["batches.meta"] == "ok"
    assert states["train"] == "mismatch"  # 10 fake images, not 50,000
    assert not report.ok


def test_mnist_verify_checks_gz_md5(tmp_path, monkeypatch):
    sums = fake_mnist(tmp_path, per_class=1, test_per_class=1)
    patch_torchvision_md5s(monkeypatch, mnist=sums)
    report = DATASETS.get("mnist").verify(tmp_path)
    gz = [c for c in report.checks if c.item.endswith(".gz")]
    assert len(gz) == 4 and all(c.state == "ok" for c in gz)
    (tmp_path / "mnist/MNIST/raw/train-labels-idx1-ubyte.gz").unlink()
    report = DATASETS.get("mnist").verify(tmp_path)
    states = {c.item: c.state for c in report.checks}
    assert states["train-labels-idx1-ubyte.gz"] == "unknown"


def test_missing_data_names_path_and_fetch_command(tmp_path):
    with pytest.raises(DataMissingError) as err:
        DATASETS.get("mnist").load("1", tmp_path, seed=0)
    msg = str(err.value)
    assert str(tmp_path / "mnist" / "MNIST" / "raw") in msg and "bench data fetch mnist" in msg
    assert "\n" not in msg


def test_unknown_class_lists_class_names():
    with pytest.raises(UsageError, match="3 \\(cat\\)"):
        DATASETS.get("cifar10").check_task("cat")
