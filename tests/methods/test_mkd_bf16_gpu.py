"""On CUDA, bf16 autocast changes no AUROC of the demo tasks by more than 0.001 (issue 10's
target). Runs every MKD job of the ``demo`` suite twice through the real job path, float32 and
``amp=true``, and compares every AUROC of the records. A few minutes on one GPU.

    python -m pytest -m gpu tests/methods/test_mkd_bf16_gpu.py
"""

from __future__ import annotations

import pytest
import torch

from bench.records.store import Store
from bench.run.execute import run_job
from bench.run.jobs import Job
from bench.run.select import select_jobs

pytestmark = pytest.mark.gpu

TOLERANCE = 1e-3


def _aurocs(results, jobs, device: str = "cuda", **overrides
            ) -> dict[tuple[str, str, str, str], float]:
    """Every AUROC of every job's record, run with ``overrides`` added."""
    out = {}
    for job in jobs:
        job = Job.make(job.suite, job.method, job.dataset, job.task, job.seed,
                       {**job.overrides_dict, **overrides})
        summary = run_job(job, results_root=results, device=device, deterministic=True)
        assert summary.status == "ok", summary.error
        for key, value in summary.metrics.items():
            if "auroc" in key and value is not None:
                out[(job.method, job.dataset, job.task, key)] = float(value)
    return out


def test_bf16_changes_no_demo_auroc_by_more_than_a_thousandth(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _, jobs = select_jobs("demo", methods=["mkd", "mkd_single"])
    ref = _aurocs(tmp_path / "fp32", jobs)
    bf16 = _aurocs(tmp_path / "bf16", jobs, amp=True)
    assert ref.keys() == bf16.keys() and ref
    worst = max(ref, key=lambda k: abs(ref[k] - bf16[k]))
    diffs = {k: round(bf16[k] - ref[k], 5) for k in ref if abs(bf16[k] - ref[k]) > TOLERANCE}
    assert not diffs, f"bf16 moved AUROCs by more than {TOLERANCE} (worst {worst}): {diffs}"
    assert Store(tmp_path / "bf16").records("demo")[0].config["amp"] is True
