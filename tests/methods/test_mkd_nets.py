"""MKD's networks, loss and score against REFERENCE §1–§2, written out as literally as possible."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.methods import METHODS
from bench.methods.backbones import FeatureExtractor
from bench.methods.mkd import MKD, MKDConfig, grayscale_p99, tap_bytes
from bench.methods.mkd.nets import (
    CRITICAL_LAYERS,
    Cloner,
    guided_relus,
    image_scores,
    training_loss,
)

# REFERENCE §1.2: CP -> (channels, spatial size at 32, 224 and 128 px)
CP_SHAPES = {"pool2": (128, 8, 56, 32), "pool3": (256, 4, 28, 16),
             "pool4": (512, 2, 14, 8), "pool5": (512, 1, 7, 4)}


def _random_taps(seed: int, batch: int = 5, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    shapes = {"pool2": (128, 8, 8), "pool3": (256, 4, 4), "pool4": (512, 2, 2),
              "pool5": (512, 1, 1)}
    return {k: scale * torch.randn(batch, *s, generator=g) for k, s in shapes.items()}


def reference_loss(preds, targets, layers, lamda):
    """REFERENCE §2.2, MseDirectionLoss: Σ_i mean(1 − cos_i) + λ Σ_i MSE_i."""
    similarity = nn.CosineSimilarity()
    mse = nn.MSELoss()
    direction = 0.0
    value = 0.0
    for layer in layers:
        p = preds[layer].double()
        t = targets[layer].double()
        direction = direction + torch.mean(1 - similarity(p.view(p.shape[0], -1),
                                                          t.view(t.shape[0], -1)))
        value = value + mse(p, t)
    return direction, value


def reference_scores(preds, targets, layers, lamda):
    """REFERENCE §2.3: per image Σ_i [(1 − cos_i) + λ mean_CHW(diff²)], one image at a time."""
    similarity = nn.CosineSimilarity()
    n = preds[layers[0]].shape[0]
    out = []
    for i in range(n):
        s = 0.0
        for layer in layers:
            p = preds[layer][i:i + 1].double()
            t = targets[layer][i:i + 1].double()
            direction = 1 - similarity(p.view(1, -1), t.view(1, -1))
            s = s + direction + lamda * torch.mean((p - t) ** 2)
        out.append(float(s))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("lamda", [0.01, 0.5])
def test_training_loss_equals_literal_reference(lamda):
    preds, targets = _random_taps(0), _random_taps(1)
    layers = list(CRITICAL_LAYERS)
    direction, value = reference_loss(preds, targets, layers, lamda)
    for terms, want in [("total", direction + lamda * value), ("direction", direction),
                        ("value", value)]:
        got = training_loss(preds, targets, layers, lamda, terms)
        assert got.dtype == torch.float32
        assert abs(float(got) - float(want)) < 1e-6 * max(1.0, abs(float(want)))


@pytest.mark.parametrize("layers", [("pool3", "pool4", "pool5"), ("pool5",), CRITICAL_LAYERS])
def test_image_scores_equal_literal_reference(layers):
    preds, targets = _random_taps(2), _random_taps(3, scale=0.5)
    want = reference_scores(preds, targets, list(layers), 0.01)
    got = image_scores(preds, targets, list(layers), 0.01).double()
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    # direction-only: the sum of (1 - cos) alone, as the official direction_loss_only score
    want_dir = reference_scores(preds, targets, list(layers), 0.0)
    got_dir = image_scores(preds, targets, list(layers), 0.5, "direction").double()
    torch.testing.assert_close(got_dir, want_dir, rtol=1e-6, atol=1e-6)


def test_score_of_identical_activations_is_zero_and_cos_eps_matches():
    taps = _random_taps(4)
    assert torch.allclose(image_scores(taps, taps, list(CRITICAL_LAYERS), 0.5),
                          torch.zeros(5), atol=1e-6)
    zero = {k: torch.zeros_like(v) for k, v in taps.items()}  # eps keeps 0/0 finite, as torch's
    assert torch.isfinite(image_scores(zero, taps, list(CRITICAL_LAYERS), 0.5)).all()


@pytest.mark.parametrize("size,col", [(32, 1), (224, 2), (128, 3)])
def test_tap_shapes_match_reference(size, col):
    x = torch.rand(1, 3, size, size)
    expert = FeatureExtractor("vgg16", "random", CRITICAL_LAYERS)
    cloner = Cloner(CRITICAL_LAYERS).eval()
    with torch.no_grad():
        s, c = expert(x), cloner(x)
    for layer, shape in CP_SHAPES.items():
        want = (1, shape[0], shape[col], shape[col])
        assert tuple(s[layer].shape) == want
        assert tuple(c[layer].shape) == want
    assert tap_bytes(CRITICAL_LAYERS, (size, size), torch.float32) == 4 * sum(
        v.numel() for v in s.values())


def test_compact_cloner_layout_and_parameter_count():
    cloner = Cloner(CRITICAL_LAYERS, "compact")
    conv = [m for m in cloner.features if isinstance(m, nn.Conv2d)]
    bn = [m for m in cloner.features if isinstance(m, nn.BatchNorm2d)]
    assert len(cloner.features) == 39 and len(conv) == 13 and len(bn) == 8
    assert sum(m.weight.numel() for m in conv) == 343_728
    assert sum(p.numel() for m in bn for p in m.parameters()) == 256
    assert sum(p.numel() for p in cloner.parameters()) == 343_984
    assert all(m.bias is None for m in conv)
    assert cloner.taps == {11: "pool2", 20: "pool3", 29: "pool4", 38: "pool5"}
    # ReLU only (no BN) on the conv that closes each block
    for i in (3, 9, 18, 27, 36):
        assert isinstance(cloner.features[i], nn.Conv2d)
        assert isinstance(cloner.features[i + 1], nn.ReLU)
    equal = Cloner(CRITICAL_LAYERS, "equal")
    assert [m.out_channels for m in equal.features if isinstance(m, nn.Conv2d)] == \
        [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_cloner_stops_at_the_deepest_layer_and_is_seeded():
    short = Cloner(("pool3", "pool2"))
    assert len(short.features) == 21 and set(short.taps.values()) == {"pool2", "pool3"}
    a = Cloner(CRITICAL_LAYERS, generator=torch.Generator().manual_seed(7))
    b = Cloner(CRITICAL_LAYERS, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    # Xavier-uniform bound sqrt(6 / (fan_in + fan_out)) for the first conv: 3*9 in, 16*9 out
    w = a.features[0].weight.detach()
    assert float(w.abs().max()) <= (6 / (27 + 144)) ** 0.5


def test_guided_relus_zero_negative_gradients_and_restore():
    cloner = Cloner(("pool2",)).eval()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    with guided_relus(cloner):
        assert not any(isinstance(m, nn.ReLU) for m in cloner.modules())
        y = cloner(x)["pool2"]
    assert sum(isinstance(m, nn.ReLU) for m in cloner.modules()) == 4
    # a single guided ReLU: gradient = (out > 0) * max(grad_out, 0)
    from bench.methods.mkd.nets import GuidedReLU

    z = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    GuidedReLU()(z).backward(torch.tensor([3.0, -4.0, 5.0]))
    assert z.grad.tolist() == [0.0, 0.0, 5.0]
    assert y.shape == (2, 128, 8, 8)


def test_grayscale_is_the_official_convert_to_grayscale():
    import numpy as np

    rng = np.random.default_rng(0)
    g = rng.normal(size=(2, 3, 16, 16)).astype(np.float32)
    got = grayscale_p99(g)
    for i in range(2):
        gray = np.sum(np.abs(g[i]), axis=0)
        hi, lo = np.percentile(gray, 99), np.min(gray)
        want = np.clip((gray - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(got[i], want, atol=1e-6)
    flat = np.zeros((1, 3, 4, 4), dtype=np.float32)
    flat[0, 0, 0, 0] = 1.0  # p99 == min: the limit, not NaN
    assert np.isfinite(grayscale_p99(flat)).all() and grayscale_p99(flat)[0, 0, 0] == 1.0


def test_presets_resolve_per_family():
    spec = METHODS.get("mkd")
    cifar = spec.config("cifar10")
    assert (cifar.image_size, cifar.crop, cifar.interpolation, cifar.normalize) == \
        (256, 224, "lanczos", "imagenet")
    assert (cifar.epochs, cifar.lamda) == (202, 0.01)
    assert spec.build("cifar10").input_spec().crop == 224
    mnist = spec.config("mnist")
    assert (mnist.image_size, mnist.normalize, mnist.epochs, mnist.lamda) == (32, "none", 52, 0.01)
    assert spec.config("fashion_mnist") == mnist
    mvtec = spec.config("mvtec")
    assert (mvtec.image_size, mvtec.epochs, mvtec.lamda) == (128, 602, 0.5)
    assert (spec.config("retinal_oct").image_size, spec.config("retinal_oct").epochs) == (128, 202)
    assert spec.config("headct").image_size == 128 and spec.config("brainmri").image_size == 256
    for fam in ("digits", "textures", "mnist", "fashion_mnist", "cifar10", "mvtec",
                "retinal_oct", "headct", "brainmri"):
        assert MKD.preset(fam), fam
    # user overrides beat presets; presets beat class defaults
    assert spec.config("mvtec", {"lamda": 0.1}).lamda == 0.1
    assert spec.config("").epochs == MKDConfig().epochs


def test_layers_and_score_layers():
    spec = METHODS.get("mkd")
    cfg = spec.config("mnist")
    assert cfg.trained_layers == CRITICAL_LAYERS
    assert cfg.scored_layers == ("pool3", "pool4", "pool5")  # the official score omits pool2
    assert spec.config("", {"score_layers": "trained"}).scored_layers == CRITICAL_LAYERS
    assert spec.config("", {"layers": ["pool2"]}).scored_layers == ("pool2",)  # fallback
    assert spec.config("", {"layers": "pool5,pool2"}).scored_layers == ("pool5",)
    single = METHODS.get("mkd_single").config("mvtec")
    assert single.trained_layers == ("pool5",) and single.scored_layers == ("pool5",)
    assert single.lamda == 0.5  # presets still apply to the variant


@pytest.mark.parametrize("bad", [{"layers": []}, {"layers": ["pool2", "pool2"]},
                                 {"layers": ["pool1"]}, {"epochs": 0}, {"eval_every": -1},
                                 {"augment": "headct", "expert_cache": "on"},
                                 {"crop": 300, "image_size": 256}, {"loss_terms": "both"}])
def test_invalid_configs_are_usage_errors(bad):
    from bench.core.errors import UsageError

    with pytest.raises(UsageError):
        METHODS.get("mkd").config("", bad)
