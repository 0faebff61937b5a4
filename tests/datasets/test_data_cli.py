import hashlib
import io
import json
import tarfile
import zipfile

import pytest

import bench.datasets.stored as stored
from tests.conftest import invoke
from tests.datasets.fakes import (
    fake_brainmri,
    fake_cifar,
    fake_headct,
    fake_mnist,
    fake_mvtec,
    fake_mvtec_category,
    fake_oct,
    patch_torchvision_md5s,
)
from tests.datasets.loopback import serve


def _one_line(res):
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("bench: error:"), res.output
    return lines[0]


def test_status_describes_every_dataset(cli, results, tmp_path):
    from bench.datasets import DATASETS

    fake_brainmri(tmp_path, n_no=98, n_yes=155)
    res = invoke(cli, results, "data", "status", data_root=tmp_path)
    assert res.exit_code == 0
    for name in DATASETS.names():
        assert name in res.output
    assert "no 98, yes 155" in res.output and "missing" in res.output
    assert "embedded" in res.output and "not verified" in res.output
    ok = invoke(cli, results, "data", "verify", "brainmri", data_root=tmp_path)
    assert ok.exit_code == 0 and "brainmri: ok" in ok.output
    from bench.datasets.manage import status

    row = status("brainmri", DATASETS.get("brainmri"), tmp_path)
    assert row.state == "found" and row.checksum.startswith("ok: ok (")
    assert row.counts == "no 98, yes 155"


def test_verify_mismatch_exits_nonzero(cli, results, tmp_path):
    fake_brainmri(tmp_path, n_no=5, n_yes=155)
    res = invoke(cli, results, "data", "verify", "brainmri", data_root=tmp_path)
    assert res.exit_code == 1 and "mismatch" in res.output and "1 problem" in res.output


def test_missing_dataset_is_one_line_with_path_and_fetch(cli, results, tmp_path):
    res = invoke(cli, results, "data", "verify", "mvtec", data_root=tmp_path)
    line = _one_line(res)
    assert str(tmp_path / "mvtec") in line and "bench data fetch mvtec" in line
    run = invoke(cli, results, "run", "--suite", "paper", "--dataset", "cifar10",
                 data_root=tmp_path)
    line = _one_line(run)
    assert str(tmp_path / "cifar10") in line and "bench data fetch cifar10" in line


def test_fetch_prints_manual_steps_for_login_sets(cli, results, tmp_path):
    res = invoke(cli, results, "data", "fetch", "headct", data_root=tmp_path)
    assert res.exit_code == 1
    assert "kaggle datasets download -d felipekitamura/head-ct-hemorrhage" in res.output
    mv = invoke(cli, results, "data", "fetch", "mvtec", data_root=tmp_path)
    assert mv.exit_code == 1 and "--accept-license" in mv.output and "CC BY-NC-SA" in mv.output
    assert not (tmp_path / "mvtec").exists()  # nothing downloads unless asked


def _mvtec_archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tf:
        import tempfile
        from pathlib import Path
        with tempfile.TemporaryDirectory() as tmp:
            fake_mvtec_category(Path(tmp) / "bottle", n_train=4, n_good=2, defects={"crack": 2})
            tf.add(Path(tmp) / "bottle", arcname="bottle")
    return buf.getvalue()


@pytest.fixture
def mvtec_site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    data = _mvtec_archive()
    (site / "mvtec_anomaly_detection.tar.xz").write_bytes(data)
    with serve(site) as url:
        manifest = dict(stored.manifest("mvtec"))
        manifest["archives"] = [{"filename": "mvtec_anomaly_detection.tar.xz",
                                 "url": f"{url}/mvtec_anomaly_detection.tar.xz",
                                 "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}]
        monkeypatch.setattr(stored, "manifest",
                            lambda name: manifest if name == "mvtec" else {"counts": {}})
        yield site


def test_fetch_mvtec_from_loopback_then_run_with_masks(cli, results, tmp_path, mvtec_site):
    root = tmp_path / "data"
    res = invoke(cli, results, "data", "fetch", "mvtec", "--accept-license", data_root=root)
    assert res.exit_code == 0, res.output
    assert "sha256 ok" in res.output
    assert (root / "mvtec/bottle/ground_truth/crack/000_mask.png").is_file()
    assert not (root / "mvtec/mvtec_anomaly_detection.tar.xz").exists()  # archive removed
    run = invoke(cli, results, "run", "--suite", "paper", "--dataset", "mvtec", "--task",
                 "bottle", "--method", "ocsvm", "--seeds", "0", "--set", "image_size=32",
                 data_root=root)
    assert run.exit_code == 0, run.output
    rec = json.loads(next((results / "runs" / "paper").glob("*.json")).read_text())
    assert rec["status"] == "ok" and "image_auroc" in rec["metrics"]
    assert rec["data"] == {"train": 4, "test": 4, "test_anomalous": 2, "image_size": [32, 32],
                           "native_size": [24, 24]}


def test_corrupted_mvtec_download_is_rejected(cli, results, tmp_path, mvtec_site):
    archive = mvtec_site / "mvtec_anomaly_detection.tar.xz"
    data = bytearray(archive.read_bytes())
    data[-10] ^= 0xFF
    archive.write_bytes(bytes(data))
    root = tmp_path / "data"
    res = invoke(cli, results, "data", "fetch", "mvtec", "--accept-license", data_root=root)
    assert res.exit_code == 1 and "sha256" in _one_line(res)
    assert [p for p in (root / "mvtec").rglob("*")] == []


@pytest.mark.parametrize("path", ["/a/..", "/a/.", "/", "/a/%2e%2e"])
@pytest.mark.parametrize("sha", [[], ["--sha256", "0" * 64]])
def test_fetch_refuses_a_url_without_a_file_name(cli, results, tmp_path, monkeypatch, path, sha):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("the URL was opened")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    root = tmp_path / "data"
    with serve(tmp_path) as url:
        res = invoke(cli, results, "data", "fetch", "mvtec", "--accept-license", "--url",
                     url + path, *sha, data_root=root)
    assert res.exit_code == 2
    line = _one_line(res)
    assert "file name" in line and url + path in line
    assert not root.exists() and not results.exists()


@pytest.mark.parametrize("option,flag", [
    (["--max-members", "3"], "--max-members"),
    (["--max-extract-gib", "0.000001"], "--max-extract-gib"),
    (["--max-ratio", "1.01"], "--max-ratio"),
])
def test_fetch_refuses_an_archive_over_the_limits(cli, results, tmp_path, mvtec_site, option,
                                                  flag):
    root = tmp_path / "data"
    res = invoke(cli, results, "data", "fetch", "mvtec", "--accept-license", *option,
                 data_root=root)
    assert res.exit_code == 1
    line = _one_line(res)
    assert flag in line and "mvtec_anomaly_detection.tar.xz" in line
    assert [p for p in (root / "mvtec").rglob("*")] == []  # the download is deleted too
    help_text = invoke(cli, results, "data", "fetch", "--help").output
    assert flag in help_text


def test_fetch_refuses_a_local_zip_bomb(cli, results, tmp_path):
    bomb = tmp_path / "head-ct-hemorrhage.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_BZIP2) as zf:
        zf.writestr("labels.csv", bytes(8 << 20))
    root = tmp_path / "data"
    res = invoke(cli, results, "data", "fetch", "headct", "--archive", str(bomb), data_root=root)
    assert res.exit_code == 1
    assert "--max-ratio" in _one_line(res) and str(bomb) in _one_line(res)
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_fetch_local_zip_with_unknown_checksum(cli, results, tmp_path):
    src = tmp_path / "src"
    fake_headct(src, n_normal=15, n_hemorrhage=5)
    archive = tmp_path / "head-ct-hemorrhage.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((src / "headct").rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src / "headct").as_posix())
    root = tmp_path / "data"
    res = invoke(cli, results, "data", "fetch", "headct", "--archive", str(archive),
                 data_root=root)
    assert res.exit_code == 0 and "checksum unknown" in res.output
    assert (root / "headct/labels.csv").is_file()
    wrong = invoke(cli, results, "data", "fetch", "headct", "--archive", str(archive),
                   "--sha256", "0" * 64, data_root=root)
    assert wrong.exit_code == 1 and "sha256" in _one_line(wrong)


def test_torchvision_fetch_through_loopback(cli, results, tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    site = tmp_path / "site"
    sums = fake_mnist(tmp_path / "src", per_class=2, test_per_class=1)
    site.mkdir()
    for gz in (tmp_path / "src/mnist/MNIST/raw").glob("*.gz"):
        (site / gz.name).write_bytes(gz.read_bytes())
    patch_torchvision_md5s(monkeypatch, mnist=sums)
    with serve(site) as url:
        monkeypatch.setattr(tvd.MNIST, "mirrors", [f"{url}/"])
        root = tmp_path / "data"
        res = invoke(cli, results, "data", "fetch", "mnist", data_root=root)
    assert res.exit_code == 0, res.output
    assert (root / "mnist/MNIST/raw/train-images-idx3-ubyte").is_file()
    ver = invoke(cli, results, "data", "verify", "mnist", data_root=root)
    assert "md5 ok" in ver.output and "mismatch" in ver.output  # 20 fake images, not 60,000


SUITE = """
name: fake
seeds: [0]
datasets:
  mnist: ["3"]
  fashion_mnist: ["1"]
  cifar10: ["7"]
  mvtec: [bottle]
  retinal_oct: all
  headct: all
  brainmri: all
  folder: [widget]
  "folder:{folder}": all
methods:
  ocsvm: {{}}
"""


def test_ocsvm_runs_over_every_layout(cli, results, tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    fake_mnist(root, per_class=4, test_per_class=2)
    fake_mnist(root, name="fashion_mnist", folder="FashionMNIST", per_class=4,
               test_per_class=2)
    patch_torchvision_md5s(monkeypatch, cifar=fake_cifar(root, per_class=4, test_per_class=2))
    fake_mvtec(root, categories=("bottle",))
    fake_oct(root, n_train=5, n_test=2)
    fake_headct(root, n_normal=14, n_hemorrhage=4)
    fake_brainmri(root, n_no=14, n_yes=4)
    fake_mvtec_category(root / "folder" / "widget", n_train=4)
    mine = tmp_path / "mine"
    fake_mvtec_category(mine / "gizmo", n_train=4, masks=False)
    suite = tmp_path / "fake.yaml"
    suite.write_text(SUITE.format(folder=mine))
    res = invoke(cli, results, "run", "--suite", str(suite), "--all", data_root=root)
    assert res.exit_code == 0, res.output
    recs = [json.loads(p.read_text()) for p in (results / "runs" / "fake").glob("*.json")]
    assert len(recs) == 9 and all(r["status"] == "ok" for r in recs)
    by = {r["job"]["dataset"]: r for r in recs}
    assert by["headct"]["data"]["train"] == 4 and by["headct"]["data"]["test"] == 14
    assert by["brainmri"]["data"]["image_size"] == [256, 256]
    assert by["cifar10"]["data"]["test"] == 20
    assert "image_auroc" in by["mvtec"]["metrics"]
    assert by[f"folder:{mine}"]["job"]["task"] == "gizmo"


def test_urls_lists_every_download_address_and_checks_them(cli, results, tmp_path, monkeypatch):
    from bench.methods import backbones

    listed = invoke(cli, results, "data", "urls")
    assert listed.exit_code == 0, listed.output
    for what in ("mnist", "fashion_mnist", "cifar10", "mvtec", "vgg16 weights"):
        assert what in listed.output
    site = tmp_path / "site"
    site.mkdir()
    (site / "vgg16.pth").write_bytes(b"w" * 10)
    with serve(site) as base:
        monkeypatch.setattr(backbones, "weight_urls", lambda: {
            "vgg16": f"{base}/vgg16.pth", "resnet18": f"{base}/moved.pth"})
        from bench.datasets import torchvision_sets

        for cls in (stored.StoredDataset, torchvision_sets._TorchvisionClasses):
            monkeypatch.setattr(cls, "download_urls", lambda self: [])
        res = invoke(cli, results, "data", "urls", "--check")
    assert res.exit_code == 1, res.output
    assert "1 of 2 address(es) answer" in res.output and "404" in res.output
    assert "200" in res.output
