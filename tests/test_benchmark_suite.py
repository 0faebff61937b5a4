"""The ``benchmark`` suite: MKD, the native baselines and anomalib's models on MVTec AD and VisA.

The ``anomalib.*`` methods come from the anomalib plugin (another branch). Where it is not
installed, the suite loader refuses the whole suite (an unknown method name, even with
``--method`` choosing only native ones); these tests check that the file parses and that its
native part expands and validates, so that they hold with and without the plugin.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.core.errors import UsageError
from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.run.select import select_jobs
from bench.run.suites import Block, Suite, load_suite

ANOMALIB = ("anomalib.Patchcore", "anomalib.Padim", "anomalib.ReverseDistillation",
            "anomalib.Fastflow", "anomalib.Cflow", "anomalib.Dfm")
NATIVE = ("mkd", "dn2", "gaussian", "padim", "padim_r18", "padim_wr50", "patchcore",
          "patchcore_wr50", "stfpm", "stfpm_r18")


def registered_part(suite: Suite) -> Suite:
    """``suite`` without the methods this installation does not have."""
    blocks = tuple(Block(b.datasets, {m: v for m, v in b.methods.items() if m in METHODS})
                   for b in suite.blocks)
    return replace(suite, blocks=tuple(b for b in blocks if b.methods))


def test_the_suite_names_mkd_the_native_baselines_and_anomalib_on_mvtec_and_visa():
    suite = load_suite("benchmark")
    assert suite.dataset_names() == ["mvtec", "visa"]
    assert set(suite.method_names()) == set(NATIVE) | set(ANOMALIB)
    assert suite.seeds == (0, 1, 2)
    assert all(d == "all" for b in suite.blocks for d in b.datasets.values())


def test_the_native_part_expands_with_imagenet_weights():
    suite = registered_part(load_suite("benchmark"))
    assert set(NATIVE) <= set(suite.method_names())
    _, jobs = select_jobs(suite, methods=list(NATIVE), check_data=False)
    n_tasks = len(DATASETS.get("mvtec").tasks()) + len(DATASETS.get("visa").tasks())
    one_class = [j for j in jobs if j.setting == "one-class"]
    assert n_tasks == 27 and len(one_class) == n_tasks * len(NATIVE) * 3
    # one unified model per dataset; k = 1, 2, 4, 8 images per category
    assert len([j for j in jobs if j.setting == "unified"]) == 2 * len(NATIVE) * 3
    assert len([j for j in jobs if j.setting == "few-shot"]) == n_tasks * 4 * len(NATIVE) * 3
    family = DATASETS.get("visa").family
    for job in jobs:
        cfg = METHODS.get(job.method).config(family, job.overrides_dict)
        weights = getattr(cfg, "expert_weights", None) or cfg.backbone_weights
        assert weights == "imagenet", job.method


@pytest.mark.skipif(all(m in METHODS for m in ANOMALIB), reason="the anomalib plugin is here")
def test_without_the_plugin_the_suite_is_refused_naming_the_method():
    with pytest.raises(UsageError, match=r"anomalib\.\w+'.*needs anomalib.*install the extra"
                                         r".* \(in suite benchmark\)"):
        select_jobs("benchmark", check_data=False)
    # the suite's other methods still run without the extra
    _, jobs = select_jobs("benchmark", methods=["mkd"], check_data=False)
    assert jobs and {j.method for j in jobs} == {"mkd"}
