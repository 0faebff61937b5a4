"""``amp=true`` on the CPU: bf16 autocast that acts (and is recorded as it acts), a bfloat16
expert cache of half the bytes, and the accuracy guard of the CUDA path.

The guard (``slow``: every MKD job of the ``demo`` suite twice through the real job path, float32
and ``amp=true``; minutes on two CPU cores) asserts that bf16 moves no image AUROC by more than
0.002:

    python -m pytest -m slow tests/methods/test_mkd_bf16_cpu.py
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.methods.base import RunContext
from bench.methods.mkd import MKD
from bench.records.store import Store
from bench.run.select import select_jobs
from tests.methods.test_mkd_bf16_gpu import _aurocs

TOLERANCE = 2e-3


def _fit(train, **overrides) -> MKD:
    m = METHODS.get("mkd").build("digits", {"expert_weights": "random", "epochs": 2,
                                            "expert_cache": "on", **overrides})
    assert isinstance(m, MKD)
    return m.fit(train, RunContext(seed=0))


def test_amp_runs_bf16_on_the_cpu_with_a_bfloat16_cache_of_half_the_bytes():
    torch.set_num_threads(1)
    train, test = DATASETS.get("digits").load("3", None, 0)
    train, test = train.subset(range(40)), test.subset(range(0, len(test), 15))
    fp32, bf16 = _fit(train), _fit(train, amp=True, channels_last=True)
    assert bf16.cache_info_["cache_mb"] == pytest.approx(fp32.cache_info_["cache_mb"] / 2)
    x = torch.rand(2, 3, 32, 32)
    with bf16._autocast():
        taps = bf16.cloner_(bf16._net_input(x))
    assert {t.dtype for t in taps.values()} == {torch.bfloat16}  # it acts: no silent fp32
    a = fp32.score(test, RunContext(seed=0)).image
    b = bf16.score(test, RunContext(seed=0)).image
    assert np.isfinite(b).all() and not np.array_equal(a, b)  # bf16 moves the numbers ...
    assert np.corrcoef(a, b)[0, 1] > 0.99  # ... by rounding, not more


@pytest.mark.slow
def test_bf16_on_the_cpu_changes_no_demo_image_auroc_by_more_than_0002(tmp_path):
    _, jobs = select_jobs("demo", methods=["mkd", "mkd_single"])
    ref = _aurocs(tmp_path / "fp32", jobs, device="cpu")
    bf16 = _aurocs(tmp_path / "bf16", jobs, device="cpu", amp=True)
    assert ref.keys() == bf16.keys() and ref
    image = [k for k in ref if k[3] == "image_auroc"]
    assert image
    diffs = {k: round(bf16[k] - ref[k], 5) for k in image if abs(bf16[k] - ref[k]) > TOLERANCE}
    assert not diffs, f"bf16 moved image AUROCs by more than {TOLERANCE}: {diffs}"
    assert Store(tmp_path / "bf16").records("demo")[0].config["amp"] is True
