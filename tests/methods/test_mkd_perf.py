"""MKD's speed options: ``torch.compile`` (wired, exact, failing clearly) and the official
per-image localization procedure that the benchmarks compare against."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.core.errors import UsageError
from bench.methods import METHODS
from bench.methods.base import RunContext
from bench.methods.mkd import MKD
from bench.perf.measure import synthetic_task


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _build(**overrides) -> MKD:
    method = METHODS.get("mkd").build("", {"expert_weights": "random", "image_size": 32,
                                           "epochs": 2, **overrides})
    assert isinstance(method, MKD)
    return method


def test_official_loop_gives_the_batched_maps_and_scores():
    data = synthetic_task(4, 32)
    m = _build()
    ctx = RunContext()
    m.fit(data, ctx)
    s = m.score(data, ctx)
    scores, maps = m.localize_official_loop(data)
    np.testing.assert_allclose(scores, s.image, rtol=1e-5)
    # float noise can flip a near-tie of a max-pool or ReLU between batch and single image
    np.testing.assert_allclose(maps, s.extra_maps["mkd_code"], atol=1e-3)
    assert np.median(np.abs(maps - s.extra_maps["mkd_code"])) < 1e-5
    # the networks are left as they were: frozen expert, no gradients kept
    assert not any(p.requires_grad for p in m.expert_.parameters())
    assert all(p.requires_grad and p.grad is None for p in m.cloner_.parameters())
    with pytest.raises(UsageError, match="gradients"):
        _build(localization="gbp").fit(data, ctx).localize_official_loop(data)


def test_compile_wraps_both_networks_and_keeps_the_numbers(monkeypatch):
    """Wiring, with Dynamo's eager backend (real compilation is the slow test below)."""
    compiled: list[str] = []
    real = torch.compile

    def eager_compile(module, **kw):
        compiled.append(type(module).__name__)
        return real(module, backend="eager", **kw)

    data = synthetic_task(4, 32)
    ref = _build().fit(data, RunContext()).score(data, RunContext())
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", eager_compile)
    m = _build(compile=True)
    got = m.fit(data, RunContext()).score(data, RunContext())
    assert sorted(compiled) == ["Cloner", "FeatureExtractor"]
    np.testing.assert_allclose(got.image, ref.image, rtol=1e-5)
    np.testing.assert_allclose(got.maps, ref.maps, rtol=1e-4, atol=1e-6)
    torch._dynamo.reset()


def test_compile_failure_is_one_clear_error(monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    class Broken:
        def __init__(self, module):
            self.module = module

        def __call__(self, x):
            raise TorchDynamoException("InvalidCxxCompiler: no working C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda module, **kw: Broken(module))
    with pytest.raises(UsageError, match="compile=true: torch.compile failed"):
        _build(compile=True).fit(synthetic_task(2, 32), RunContext())


def test_compile_unavailable_is_one_clear_error(monkeypatch):
    def unsupported(module, **kw):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(torch, "compile", unsupported)
    with pytest.raises(UsageError, match="not available here"):
        _build(compile=True).fit(synthetic_task(2, 32), RunContext())


@pytest.mark.slow
def test_compile_with_inductor_on_the_cpu():
    """The real thing: inductor generates and builds C++ (minutes on two busy cores)."""
    data = synthetic_task(4, 32)
    ref = _build().fit(data, RunContext()).score(data, RunContext())
    torch._dynamo.reset()
    got = _build(compile=True).fit(data, RunContext()).score(data, RunContext())
    np.testing.assert_allclose(got.image, ref.image, rtol=1e-4)
    torch._dynamo.reset()
