"""MKD on CUDA: the cache, bf16 autocast and channels_last (deselected without ``-m gpu``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.methods import METHODS
from bench.methods.base import RunContext
from bench.perf.measure import synthetic_task

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")


def _scores(device, data, **kw):
    m = METHODS.get("mkd").build("", {"expert_weights": "random", "epochs": 3,
                                      "image_size": 64, **kw})
    ctx = RunContext(device=device, seed=0)
    return m, m.fit(data, ctx).score(data, ctx)


def test_cuda_matches_cpu_and_cache_is_exact_enough(cuda):
    data = synthetic_task(32, 64)
    _, cpu = _scores(torch.device("cpu"), data)
    m_on, on = _scores(cuda, data, expert_cache="on")
    _, off = _scores(cuda, data, expert_cache="off")
    assert m_on.cache_info_["cached"] == 32
    np.testing.assert_allclose(on.image, off.image, rtol=1e-3)
    np.testing.assert_allclose(on.image, cpu.image, rtol=1e-2)
    assert on.maps is not None and on.maps.shape == (32, 64, 64)


def test_amp_and_channels_last_run_and_stay_close(cuda):
    data = synthetic_task(32, 64)
    _, ref = _scores(cuda, data)
    m, fast = _scores(cuda, data, amp=True, channels_last=True)
    assert m._activation_dtype() == torch.bfloat16
    assert np.isfinite(fast.image).all() and np.isfinite(fast.maps).all()
    assert np.corrcoef(ref.image, fast.image)[0, 1] > 0.9
