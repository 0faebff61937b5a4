import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from bench.core.errors import UsageError
from bench.methods import backbones as B
from tests.conftest import invoke


def test_random_is_seeded_and_recorded():
    a = B.FeatureExtractor("vgg16", "random", ["pool2", "pool5"], seed=3)
    b = B.FeatureExtractor("vgg16", "random", ["pool2", "pool5"], seed=3)
    c = B.FeatureExtractor("vgg16", "random", ["pool2", "pool5"], seed=4)
    assert a.identity == "vgg16:random:3"
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(a(x)["pool5"], b(x)["pool5"])
    assert not torch.equal(a(x)["pool5"], c(x)["pool5"])
    assert all(not p.requires_grad for p in a.parameters())
    assert not a.train().training  # frozen: stays in eval mode


@pytest.mark.parametrize("name,layers,shapes", [
    ("vgg16", ["pool2", "pool3", "pool4", "pool5"],
     [(128, 8, 8), (256, 4, 4), (512, 2, 2), (512, 1, 1)]),
    ("resnet18", ["layer1", "layer2", "layer3"], [(64, 8, 8), (128, 4, 4), (256, 2, 2)]),
])
def test_tap_shapes(name, layers, shapes):
    fe = B.FeatureExtractor(name, "random", layers)
    out = fe(torch.rand(2, 3, 32, 32))
    assert [tuple(out[k].shape[1:]) for k in layers] == shapes
    assert [fe.tap_info(k).channels for k in layers] == [s[0] for s in shapes]
    assert [32 // fe.tap_info(k).stride for k in layers] == [s[1] for s in shapes]


def test_no_weights_is_a_clear_error():
    with pytest.raises(UsageError, match="expert_weights=imagenet.*=PATH.*=random"):
        B.FeatureExtractor("vgg16", None, ["pool5"])
    with pytest.raises(UsageError, match="unknown backbone"):
        B.FeatureExtractor("alexnet", "random", ["pool5"])
    with pytest.raises(UsageError, match="unknown layer"):
        B.FeatureExtractor("vgg16", "random", ["layer3"])


def test_state_dict_file_loads_as_expert(tmp_path):
    src = B.FeatureExtractor("vgg16", "random", ["pool5"], seed=11)
    path = tmp_path / "my_vgg.pth"
    # a full model's keys, as torch.save(vgg16().state_dict()) would write them
    torch.save({f"features.{k}": v for k, v in src.trunk.state_dict().items()}, path)
    fe = B.FeatureExtractor("vgg16", str(path), ["pool5"])
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(fe(x)["pool5"], src(x)["pool5"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert fe.identity == f"vgg16:file:my_vgg.pth:sha256={digest}"


def test_wrong_architecture_missing_file_and_bad_pickle(tmp_path):
    other = tmp_path / "resnet.pth"
    torch.save(B.build_trunk("resnet18", "random")[0].state_dict(), other)
    with pytest.raises(B.WeightsError, match="does not fit vgg16"):
        B.FeatureExtractor("vgg16", str(other), ["pool5"])
    with pytest.raises(B.WeightsError, match="not found"):
        B.FeatureExtractor("vgg16", str(tmp_path / "missing.pth"), ["pool5"])
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(B.WeightsError, match="cannot load"):
        B.FeatureExtractor("vgg16", str(bad), ["pool5"])


class Payload:
    """Stands for code a checkpoint would run when unpickled."""


def test_checkpoint_with_code_objects_is_one_line_without_torchs_advice(tmp_path, cli):
    path = tmp_path / "pickled_model.pth"
    torch.save({"features.0.weight": torch.zeros(1), "extra": Payload()}, path)
    with pytest.raises(B.WeightsError) as info:
        B.FeatureExtractor("vgg16", str(path), ["pool5"])
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "not a plain state dict" in message and "Payload" in message
    assert "refused for safety" in message and "weights_only" not in message
    # where a user meets it: the run stops before any job with that line, nothing recorded
    results = tmp_path / "results"
    res = invoke(cli, results, "run", "--suite", "demo", "--method", "ocsvm", "--dataset",
                 "digits", "--task", "0", "--seeds", "0", "--set", "features=backbone",
                 "--set", f"backbone_weights={path}")
    assert res.exit_code == 1 and res.output.startswith("bench: error:")
    assert "not a plain state dict" in res.output and len(res.output.splitlines()) == 1
    assert "weights_only" not in res.output and "Traceback" not in res.output
    assert not list(results.rglob("*.json"))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def _serve(folder: Path):
    handler = lambda *a, **k: _Quiet(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_imagenet_download_checks_hash_and_loads(tmp_path, monkeypatch):
    serve = tmp_path / "serve"
    serve.mkdir()
    src = B.build_trunk("vgg16", "random", seed=5)[0]
    blob = serve / "tmp.pth"
    torch.save({f"features.{k}": v for k, v in src.state_dict().items()}, blob)
    prefix = hashlib.sha256(blob.read_bytes()).hexdigest()[:8]
    good = serve / f"vgg16-{prefix}.pth"
    blob.rename(good)
    (serve / "vgg16-00000000.pth").write_bytes(good.read_bytes())  # wrong hash prefix
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    server = _serve(serve)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setattr(B, "imagenet_source",
                            lambda name: (f"{base}/{good.name}", good.name))
        fe = B.FeatureExtractor("vgg16", "imagenet", ["pool5"])
        assert fe.identity.startswith("vgg16:imagenet:IMAGENET1K_V1:sha256=")
        assert (B.hub_checkpoint_dir() / good.name).is_file()
        x = torch.rand(1, 3, 32, 32)
        assert torch.equal(fe(x)["pool5"], B.FeatureExtractor("vgg16", "random", ["pool5"],
                                                              seed=5)(x)["pool5"])
        monkeypatch.setattr(B, "imagenet_source",
                            lambda name: (f"{base}/vgg16-00000000.pth", "vgg16-00000000.pth"))
        with pytest.raises(B.WeightsError, match="could not be downloaded"):
            B.FeatureExtractor("vgg16", "imagenet", ["pool5"])
        assert not (B.hub_checkpoint_dir() / "vgg16-00000000.pth").exists()
    finally:
        server.shutdown()
