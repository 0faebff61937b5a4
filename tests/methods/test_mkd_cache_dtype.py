"""``cache_dtype=bfloat16``: MKD's expert activations rounded to bfloat16 (half the cache's
bytes, an opt-in that moves the numbers), the float32 default unchanged, the cache filled
without a second copy, and the accuracy guard.

The guard (``slow``: every MKD job of the ``demo`` suite through the real job path, float32 and
rounded; a few minutes on two quiet CPU cores) asserts that no image AUROC moves by more than
0.002 (on 2026-12-02 it did not hold: docs/performance.md):

    python -m pytest -m slow tests/methods/test_mkd_cache_dtype.py
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.datasets import DATASETS
from bench.datasets.base import InputSpec
from bench.methods import METHODS
from bench.methods.base import RunContext
from bench.methods.mkd import MKD, tap_bytes
from bench.records.store import Store
from bench.run.select import select_jobs
from tests.methods.test_mkd_bf16_gpu import _aurocs

TOLERANCE = 2e-3


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    train, test = DATASETS.get("digits").load("3", None, 0)
    return train.subset(range(40)), test.subset(range(0, len(test), 15))


def _build(**overrides) -> MKD:
    m = METHODS.get("mkd").build("digits", {"expert_weights": "random", "epochs": 2, **overrides})
    assert isinstance(m, MKD)
    return m


def test_a_rounded_cache_holds_half_the_bytes_and_moves_scores_by_rounding_only(digits):
    dtype = "bfloat16"
    train, test = digits
    exact = _build(expert_cache="on").fit(train, RunContext())
    rounded = _build(expert_cache="on", cache_dtype=dtype).fit(train, RunContext())
    assert rounded.cache_info_["cache_mb"] == pytest.approx(exact.cache_info_["cache_mb"] / 2)
    assert rounded.cache_info_["cache_mb"] * 2**20 == tap_bytes(
        rounded.config.trained_layers, (32, 32), getattr(torch, dtype)) * len(train)
    assert {str(v.dtype) for v in rounded._expert(rounded._net_input(
        rounded._floats(train.images[:2]))).values()} == {f"torch.{dtype}"}
    a = exact.score(test, RunContext()).image
    b = rounded.score(test, RunContext()).image
    assert np.isfinite(b).all() and not np.array_equal(a, b)
    assert np.corrcoef(a, b)[0, 1] > 0.999


def test_rounded_targets_do_not_depend_on_the_cache_budget(digits):
    """Uncached batches are rounded too: cache on, off and partial give the same numbers."""
    train, test = digits
    scores, cached = {}, {}
    for mode, budget in [("on", None), ("off", None), ("auto", 1)]:
        m = _build(expert_cache=mode, cache_budget_mb=budget, cache_dtype="bfloat16")
        scores[mode] = m.fit(train, RunContext()).score(test, RunContext()).image
        cached[mode] = m.cache_info_["cached"]
    assert cached["on"] == len(train) and cached["off"] == 0 and 0 < cached["auto"] < len(train)
    np.testing.assert_array_equal(scores["on"], scores["off"])
    np.testing.assert_array_equal(scores["on"], scores["auto"])


def test_the_cache_fills_in_place_with_the_exact_activations(digits):
    """No concatenation: the store is written batch by batch and equals the expert's output,
    bit for bit, for a fill of several batches."""
    train, _ = digits
    m = _build(expert_cache="on", batch_size=16).fit(train, RunContext())
    cache = m._make_cache(train.images, m.config.trained_layers, 2**40)
    assert cache is not None and cache.n == len(train)
    ref = m._expert(m._net_input(m._floats(train.images)))
    for k, v in cache.store.items():
        assert v.dtype == torch.float32
        assert v.is_contiguous() or v.is_contiguous(memory_format=torch.channels_last)
        assert v.is_contiguous() == ref[k].is_contiguous()  # the expert's memory format
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0)


def test_localization_uses_the_rounded_values_and_keeps_the_experts_gradient():
    train, test = DATASETS.get("textures").load("brick", None, 0, InputSpec(size=32))
    train, test = train.subset(range(12)), test.subset([0, 1, 40, 41])
    exact = _build(expert_cache="on").fit(train, RunContext())
    rounded = _build(expert_cache="on", cache_dtype="bfloat16").fit(train, RunContext())
    x = rounded._net_input(rounded._floats(test.images))
    grad, s = rounded._input_gradients(x)
    # the localization pass scores what the detection pass scores (the same rounded targets)
    np.testing.assert_allclose(s.double().numpy(), rounded._image_scores(test), rtol=1e-5)
    g_exact, _ = exact._input_gradients(exact._net_input(exact._floats(test.images)))
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert float(torch.corrcoef(torch.stack([grad.flatten(), g_exact.flatten()]))[0, 1]) > 0.99


def test_amp_with_a_bfloat16_cache_is_amp():
    """Under amp the expert returns bfloat16 already: cache_dtype=bfloat16 changes nothing."""
    train, test = DATASETS.get("digits").load("3", None, 0)
    train, test = train.subset(range(20)), test.subset(range(0, len(test), 30))
    a = _build(amp=True, expert_cache="on").fit(train, RunContext()).score(test, RunContext())
    b = _build(amp=True, expert_cache="on", cache_dtype="bfloat16").fit(
        train, RunContext()).score(test, RunContext())
    np.testing.assert_array_equal(a.image, b.image)


@pytest.mark.slow
def test_a_rounded_cache_changes_no_demo_image_auroc_by_more_than_0002(tmp_path):
    _, jobs = select_jobs("demo", methods=["mkd", "mkd_single"])
    ref = _aurocs(tmp_path / "fp32", jobs, device="cpu")
    rounded = _aurocs(tmp_path / "bf16", jobs, device="cpu", cache_dtype="bfloat16")
    assert ref.keys() == rounded.keys() and ref
    image = [k for k in ref if k[3] == "image_auroc"]
    assert image
    diffs = {k: round(rounded[k] - ref[k], 5) for k in image
             if abs(rounded[k] - ref[k]) > TOLERANCE}
    assert not diffs, f"cache_dtype=bfloat16 moved image AUROCs by more than {TOLERANCE}: {diffs}"
    assert Store(tmp_path / "bf16").records("demo")[0].config["cache_dtype"] == "bfloat16"
