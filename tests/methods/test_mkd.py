"""The MKD method: training, caching, seeds, history, localization, expert weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from bench.core.errors import BenchError
from bench.core.metrics import evaluate
from bench.datasets import DATASETS
from bench.datasets.base import InputSpec
from bench.methods import METHODS
from bench.methods.backbones import build_trunk
from bench.methods.base import RunContext
from bench.methods.mkd import MKD
from bench.methods.mkd.localize import smoothgrad_std


def _build(name: str = "mkd", family: str = "digits", **overrides) -> MKD:
    method = METHODS.get(name).build(family, {"expert_weights": "random", **overrides})
    assert isinstance(method, MKD)
    return method


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads; one thread keeps these tests fast on a busy
    machine (conftest restores the thread count)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    train, test = DATASETS.get("digits").load("3", None, 0)
    return train.subset(range(40)), test.subset(range(0, len(test), 15))


@pytest.fixture(scope="module")
def textures():
    """brick at 32 px: 60 train, 40 normal then 40 defective test crops."""
    return DATASETS.get("textures").load("brick", None, 0, InputSpec(size=32))


def _ctx(seed: int = 0, **kw) -> RunContext:
    return RunContext(seed=seed, **kw)


def test_expert_cache_on_off_and_partial_give_identical_scores(digits):
    train, test = digits
    scores, cached = {}, {}
    for mode, budget in [("on", None), ("off", None), ("auto", 1)]:
        m = _build(epochs=2, expert_cache=mode, cache_budget_mb=budget)
        scores[mode] = m.fit(train, _ctx()).score(test, _ctx()).image
        cached[mode] = m.cache_info_["cached"]
    assert cached["on"] == len(train) and cached["off"] == 0
    assert 0 < cached["auto"] < len(train)  # 1 MiB holds 17 images' taps at 32 px
    np.testing.assert_array_equal(scores["on"], scores["off"])
    np.testing.assert_array_equal(scores["on"], scores["auto"])


def test_same_seed_same_scores_other_seed_differs(digits):
    train, test = digits
    a = _build(epochs=2).fit(train, _ctx(0)).score(test, _ctx(0)).image
    b = _build(epochs=2).fit(train, _ctx(0)).score(test, _ctx(0)).image
    c = _build(epochs=2).fit(train, _ctx(1)).score(test, _ctx(1)).image
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_history_progress_and_final_epoch(digits):
    train, test = digits
    seen = []

    def ev(data, s):
        return evaluate(data.labels, s.image)[0]

    m = _build(epochs=4, eval_every=2)
    ctx = _ctx(eval_data=test, evaluate=ev, progress=lambda d, t: seen.append((d, t)))
    m.fit(train, ctx)
    assert [h["epoch"] for h in m.history_] == [0, 2, 3]  # every 2 from epoch 0, and the last
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    final = m.score(test, _ctx())
    assert m.history_[-1]["image_auroc"] == pytest.approx(ev(test, final)["image_auroc"])
    assert len(m.losses_) == 4 and all(np.isfinite(m.losses_))
    assert m.provenance() == {"expert": "vgg16:random:0", "checkpoint_policy": "final"}
    # no history without eval data, or with eval_every = 0
    assert _build(epochs=1, eval_every=1).fit(train, _ctx()).history_ == []
    assert _build(epochs=2).fit(train, ctx).history_ == []


def test_mkd_single_trains_and_scores_pool5_only(digits):
    train, test = digits
    m = _build("mkd_single", epochs=1)
    m.fit(train, _ctx())
    assert set(m.cloner_.taps.values()) == {"pool5"} and m.expert_.layers == ("pool5",)
    x = test.batch(slice(0, 4))
    with torch.no_grad():
        s, c = m.expert_(x)["pool5"].flatten(1), m.cloner_(x)["pool5"].flatten(1)
    want = (1 - nn.CosineSimilarity()(c, s)) + 0.01 * ((c - s) ** 2).mean(1)
    np.testing.assert_allclose(m.score(test, _ctx()).image[:4], want.double().numpy(),
                               rtol=1e-6, atol=1e-7)


def test_expert_weights_from_a_file_and_missing_file(tmp_path, digits):
    train, test = digits
    trunk, _ = build_trunk("vgg16", "random", seed=5)
    path = tmp_path / "expert.pth"
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, path)
    m = _build(epochs=1, expert_weights=str(path))
    m.fit(train, _ctx())
    assert m.provenance()["expert"].startswith("vgg16:file:expert.pth:sha256=")
    x = test.batch(slice(0, 2))
    with torch.no_grad():
        assert torch.equal(m.expert_(x)["pool5"], trunk(x))
    with pytest.raises(BenchError, match="not found"):
        _build(epochs=1, expert_weights=str(tmp_path / "nope.pth")).fit(train, _ctx())
    with pytest.raises(BenchError, match="expert_weights=imagenet"):
        METHODS.get("mkd").build("digits").fit(train, _ctx())


def _official_gradient_maps(m: MKD, data, sigma: float = 4.0) -> np.ndarray:
    """REFERENCE §5.2 'gradients', one image at a time as the official code does it."""
    cos, mse = nn.CosineSimilarity(), nn.MSELoss()
    out = []
    for i in range(len(data)):
        x = data.batch(slice(i, i + 1)).requires_grad_(True)
        p, t = m.cloner_(x), m.expert_(x)
        loss = 0.0
        for layer in ("pool3", "pool4", "pool5"):
            loss = loss + mse(p[layer], t[layer]) * m.config.lamda + torch.mean(
                1 - cos(p[layer].reshape(1, -1), t[layer].reshape(1, -1)))
        loss.backward()
        g = x.grad[0].numpy()
        gray = np.sum(np.abs(g), axis=0)
        hi, lo = np.percentile(gray, 99), np.min(gray)
        out.append(gaussian_filter(np.clip((gray - lo) / (hi - lo), 0, 1), sigma=sigma))
    return np.stack(out)


def test_batched_gradient_maps_equal_the_official_per_image_loop(textures):
    train, test = textures
    sub = test.subset([0, 45, 50, 77])
    m = _build(family="textures", epochs=1, image_size=32)
    m.fit(train.subset(range(20)), _ctx())
    s = m.score(sub, _ctx())
    assert s.maps is not None and s.maps.shape == (4, 32, 32)
    code = s.extra_maps["mkd_code"]
    assert code.min() >= 0 and code.max() <= 1
    # float noise can flip a near-tie of a max-pool or a ReLU between the batched and the
    # one-image computation, which moves a few gradients: maps in [0, 1] agree to 1e-3
    want = _official_gradient_maps(m, sub)
    np.testing.assert_allclose(code, want, atol=1e-3)
    assert np.median(np.abs(code - want)) < 1e-5
    np.testing.assert_allclose(s.image, m._image_scores(sub), rtol=1e-5)


def test_gradient_maps_concentrate_on_defects():
    train, test = DATASETS.get("textures").load("brick", None, 0, InputSpec(size=64))
    sub = test.subset(range(40, 56))  # defective images only
    m = _build(family="textures", epochs=3)
    s = m.fit(train.subset(range(30)), _ctx()).score(sub, _ctx())
    masks = sub.masks.numpy() >= 0.5
    for maps in (s.maps, s.extra_maps["mkd_code"]):
        inside = maps[masks].mean()  # mean = mass per unit area
        outside = maps[~masks].mean()
        assert inside > 1.15 * outside, (inside, outside)


@pytest.mark.parametrize("method", ["smoothgrad", "gbp"])
def test_smoothgrad_and_gbp_maps(textures, method):
    train, test = textures
    sub = test.subset([0, 50, 60])
    m = _build(family="textures", epochs=1, image_size=32, localization=method,
               smoothgrad_samples=3)
    m.fit(train.subset(range(16)), _ctx())
    a = m.score(sub, _ctx())
    b = m.score(sub, _ctx())
    assert a.maps.shape == (3, 32, 32) and np.isfinite(a.maps).all()
    assert a.extra_maps["mkd_code"].min() >= 0 and a.extra_maps["mkd_code"].max() <= 1
    np.testing.assert_array_equal(a.maps, b.maps)  # seeded noise
    np.testing.assert_allclose(a.image, m._image_scores(sub), rtol=1e-6)
    plain = _build(family="textures", epochs=1, image_size=32).fit(
        train.subset(range(16)), _ctx()).score(sub, _ctx())
    assert not np.allclose(a.maps, plain.maps)


def test_smoothgrad_noise_levels():
    x = torch.zeros(2, 3, 4, 4)
    x[0, 0, 0, 0] = 2.0  # range 2
    x[1, 0, 0, 0] = 1.0  # range 1

    def std(**overrides):
        cfg = _build(localization="smoothgrad", **overrides).config
        return smoothgrad_std(x, cfg.noise_level, cfg.smoothgrad_noise_mode).flatten().tolist()

    assert std() == pytest.approx([0.3, 0.15])
    assert std(smoothgrad_noise_mode="official") == pytest.approx([0.025**2, 0.05**2])


def test_no_maps_without_masks_or_when_disabled(digits, textures):
    train, test = digits
    m = _build(epochs=1).fit(train, _ctx())
    assert m.score(test, _ctx()).maps is None  # digits has no masks
    ttrain, ttest = textures
    m = _build(family="textures", epochs=1, image_size=32, localization="none")
    s = m.fit(ttrain.subset(range(8)), _ctx()).score(ttest.subset([0, 50]), _ctx())
    assert s.maps is None and not s.extra_maps


def test_headct_augmentation_disables_the_cache(digits):
    train, test = digits
    m = _build(epochs=2, augment="headct")
    s = m.fit(train, _ctx()).score(test, _ctx()).image
    assert m.cache_info_["cached"] == 0 and np.isfinite(s).all()
    plain = _build(epochs=2).fit(train, _ctx()).score(test, _ctx()).image
    assert not np.allclose(s, plain)


def test_score_before_fit_is_an_error(digits):
    with pytest.raises(RuntimeError, match="before fit"):
        _build().score(digits[1], _ctx())


def test_pixel_metrics_have_a_history_like_the_image_ones(textures, tmp_path):
    """With eval_every, each evaluation localizes too: pixel_auroc_mkd gets a converged mean,
    the like-for-like of the paper's Table 4; the final pixel metrics equal the last
    evaluation's (same model, same maps)."""
    from bench.run.execute import score_metrics, summarize_history

    train, test = textures
    m = _build(family="textures", epochs=3, eval_every=1, image_size=32)

    def ev(data, s):
        return score_metrics(data, s, m.extra_map_protocols, native=False)[0]

    m.fit(train, _ctx(eval_data=test, evaluate=ev))
    assert [h["epoch"] for h in m.history_] == [0, 1, 2]
    for h in m.history_:
        assert {"pixel_auroc_mkd", "pixel_auroc_model_res", "pixel_aupro_model_res"} <= set(h)
        assert "pixel_auroc" not in h  # the native-resolution ones only at the end (cost)
    final, _ = score_metrics(test, m.score(test, _ctx()), m.extra_map_protocols)
    assert final["pixel_auroc_mkd"] == pytest.approx(m.history_[-1]["pixel_auroc_mkd"])
    summary = summarize_history(m.history_)
    assert summary["pixel_auroc_mkd_converged_mean"] == pytest.approx(
        np.mean([h["pixel_auroc_mkd"] for h in m.history_[1:]]))  # epochs >= 2 / 2
    # eval_localization=false: image metrics only, as before
    m2 = _build(family="textures", epochs=2, eval_every=1, image_size=32,
                eval_localization=False)
    m2.fit(train, _ctx(eval_data=test, evaluate=ev))
    assert all("pixel_auroc_mkd" not in h for h in m2.history_)
