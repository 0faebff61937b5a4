"""Deep baselines: SSIM against scikit-image, the autoencoder, Deep SVDD."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import structural_similarity
from torch import nn

from bench.core.errors import UsageError
from bench.core.metrics import image_auroc, pixel_auroc
from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.methods.autoencoder import ConvAutoencoder, ConvAutoencoderDetector
from bench.methods.base import RunContext
from bench.methods.dsvdd import DeepSVDDDetector, LeNet, LeNetDecoder
from bench.methods.ssim import ssim, ssim_map
from tests.helpers import blobs_task

PAPER_FAMILIES = ("mnist", "fashion_mnist", "cifar10", "mvtec", "retinal_oct", "headct",
                  "brainmri")


def _pairs():
    rng = np.random.default_rng(0)
    gray = skimage.data.camera()[120:184, 200:280].astype(np.float64) / 255
    noisy = np.clip(gray + rng.normal(0, 0.08, gray.shape), 0, 1)
    rgb = skimage.data.astronaut()[100:148, 150:206].astype(np.float64) / 255
    shifted = np.clip(np.roll(rgb, 2, axis=1) * 0.9 + 0.05, 0, 1)
    return [(gray, noisy, None), (rgb, shifted, 2)]


@pytest.mark.parametrize("a,b,channel_axis", _pairs())
def test_ssim_matches_scikit_image(a, b, channel_axis):
    mean, full = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=1.0, full=True,
                                       channel_axis=channel_axis)
    if channel_axis is None:
        ta, tb, full = a[None, None], b[None, None], full[None, None]
    else:
        ta, tb, full = a.transpose(2, 0, 1)[None], b.transpose(2, 0, 1)[None], \
            full.transpose(2, 0, 1)[None]
    ta, tb = torch.from_numpy(ta.copy()), torch.from_numpy(tb.copy())
    np.testing.assert_allclose(ssim_map(ta, tb).numpy(), full, atol=1e-10)
    assert ssim(ta, tb).item() == pytest.approx(mean, abs=1e-10)
    assert ssim(ta, ta).item() == pytest.approx(1.0)
    # float32 (training) agrees closely, and SSIM is differentiable
    t32 = tb.float().requires_grad_(True)
    (1 - ssim(ta.float(), t32)).sum().backward()
    assert t32.grad is not None and torch.isfinite(t32.grad).all()


@pytest.mark.parametrize("size", [16, 28, 32, 64, 128, 256])
def test_autoencoder_sizes(size):
    net = ConvAutoencoder(3, (size, size), latent_dim=8, base_channels=4).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, size, size))
    assert out.shape == (2, 3, size, size) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("size", [15, 8])
def test_autoencoder_rejects_sizes_it_cannot_mirror(size):
    with pytest.raises(UsageError, match="even image side"):
        ConvAutoencoder(3, (size, size))


def test_presets_resolve_and_build():
    for family in (*PAPER_FAMILIES, "digits", "textures"):
        assert family in ConvAutoencoderDetector.presets
        assert family in DeepSVDDDetector.presets
        cae = METHODS.get("cae").config(family)
        dsvdd = METHODS.get("dsvdd").config(family)
        size = cae.image_size or 64
        ConvAutoencoder(1, (size, size), cae.latent_dim, cae.base_channels)
        LeNet(1, (dsvdd.image_size or 64,) * 2, dsvdd.channels, dsvdd.rep_dim)
    assert METHODS.get("dsvdd").config("mnist").pretrain_epochs == 150
    assert METHODS.get("dsvdd").config("cifar10").pretrain_milestones == (250,)


def _digits(name, task, **overrides):
    dataset = DATASETS.get("digits")
    method = METHODS.get(name).build(dataset.family, overrides)
    train, test = dataset.load(task, None, 0, method.input_spec())
    return method, train, test


@pytest.mark.parametrize("name", ["cae", "dsvdd"])
@pytest.mark.parametrize("task", ["3", "8"])
def test_beats_chance_on_digits(name, task):
    method, train, test = _digits(name, task)  # the demo preset: a few epochs
    method.fit(train, RunContext(seed=0))
    assert image_auroc(test.labels, method.score(test, RunContext(seed=0)).image) > 0.6


def test_autoencoder_maps_localize_defects_on_textures():
    dataset = DATASETS.get("textures")
    method = METHODS.get("cae").build(dataset.family)
    train, test = dataset.load("brick", None, 0, method.input_spec())
    progress: list[tuple[int, int]] = []
    method.fit(train, RunContext(seed=0, progress=lambda d, t: progress.append((d, t))))
    assert progress[-1] == (method.config.epochs, method.config.epochs)
    scores = method.score(test, RunContext(seed=0))
    assert scores.maps is not None and scores.maps.shape == (len(test), *test.size)
    assert test.masks is not None
    assert pixel_auroc(test.masks.numpy(), scores.maps) > 0.7


def test_autoencoder_ssim_and_max_score():
    train, test = blobs_task(n_train=24, n_test=20, size=32, seed=2)
    method = METHODS.get("cae").build("", {**METHODS.get("cae").test_overrides,
                                           "error": "ssim", "image_score": "max"})
    method.fit(train, RunContext(seed=0))
    scores = method.score(test, RunContext(seed=0))
    assert scores.maps is not None
    np.testing.assert_allclose(scores.image, scores.maps.max(axis=(1, 2)))
    raw = method.error_maps(test, RunContext())
    assert (raw >= -1e-6).all() and (raw <= 2 + 1e-6).all()  # 1 - SSIM lies in [0, 2]


def test_dsvdd_network_is_bias_free():
    net = LeNet(3, (32, 32), (32, 64, 128), 128)
    decoder = LeNetDecoder(net, 3)
    for module in [*net.modules(), *decoder.modules()]:
        assert getattr(module, "bias", None) is None, module
        if isinstance(module, nn.BatchNorm2d):
            assert not module.affine
    x = torch.rand(4, 3, 32, 32)
    assert net(x).shape == (4, 128)
    assert decoder(net(x)).shape == x.shape


def _tiny_dsvdd(**overrides):
    spec = METHODS.get("dsvdd")
    return spec.build("", {**spec.test_overrides, **overrides})


def test_dsvdd_center_and_objectives():
    train, test = blobs_task(n_train=24, n_test=20, size=32, seed=3)
    one = _tiny_dsvdd(center_eps=0.5).fit(train, RunContext(seed=0))
    assert (one.center_.abs() >= 0.5 - 1e-7).all()  # the eps fix
    assert one.radius2_ == 0.0
    soft = _tiny_dsvdd(objective="soft-boundary", nu=0.2, warm_up_epochs=1)
    soft.fit(train, RunContext(seed=0))
    assert soft.radius2_ > 0
    scores = soft.score(test, RunContext()).image
    with torch.no_grad():
        x = torch.cat(list(soft._batches(test, RunContext())))
        dist = (soft.net_(x) - soft.center_).pow(2).sum(dim=1).double().numpy()
    np.testing.assert_allclose(scores, dist - soft.radius2_, rtol=1e-5, atol=1e-6)
    # no warm-up end within training: R stays 0
    assert _tiny_dsvdd(objective="soft-boundary", warm_up_epochs=99).fit(
        train, RunContext(seed=0)).radius2_ == 0.0


def test_dsvdd_pretraining_is_used():
    train, _ = blobs_task(n_train=24, n_test=20, size=32, seed=4)
    seen: list[int] = []
    method = _tiny_dsvdd(pretrain_epochs=3, epochs=2)
    method.fit(train, RunContext(seed=0, progress=lambda d, t: seen.append(t)))
    assert seen == [5] * 5  # pretraining epochs count in the progress total
    fresh = _tiny_dsvdd(pretrain_epochs=0, epochs=2).fit(train, RunContext(seed=0))
    assert not torch.equal(method.center_, fresh.center_)
