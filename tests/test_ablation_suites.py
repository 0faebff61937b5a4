"""The ablation suites: the paper's factors and levels, and valid once MKD is registered."""

import pytest

from bench.run.jobs import expand
from bench.run.select import select_jobs
from bench.run.suites import load_suite

LAYER_LEVELS = [["pool2"], ["pool3"], ["pool4"], ["pool5"], ["pool4", "pool5"],
                ["pool3", "pool4", "pool5"], ["pool2", "pool3", "pool4", "pool5"]]


def variants(name):
    return [(b, v) for b in load_suite(name).blocks for v in b.methods.get("mkd", [])]


@pytest.mark.parametrize("name", ["ablation", "ablation-demo"])
def test_factors_and_levels(name):
    vs = variants(name)
    layer_vs = [v for _, v in vs if "layers" in v]
    assert [v["layers"] for v in layer_vs] == LAYER_LEVELS  # each single, last 1..4 (Fig. 3)
    assert all(v["score_layers"] == "trained" for v in layer_vs)  # scored where trained
    assert {v.get("loss_terms") for _, v in vs} >= {"direction", "value"}  # Fig. 5
    assert any(v.get("cloner") == "equal" for _, v in vs)  # Fig. 4
    assert len({v["lamda"] for _, v in vs if "lamda" in v}) >= 2
    baseline = vs[0][1]  # the first block: one run supplies every factor's default level
    assert set(baseline) <= {"expert_weights", "epochs", "eval_every"}
    # every other variant changes exactly one factor (layers come with their scoring)
    for _, v in vs[1:]:
        changed = {k for k in v if v[k] != baseline.get(k)} - {"score_layers"}
        assert len(changed) == 1, v


def test_paper_ablation_covers_the_paper_datasets_and_the_expert():
    vs = variants("ablation")
    datasets = {d for b, _ in vs for d in b.datasets}
    assert datasets == {"mnist", "mvtec", "cifar10"}
    assert any(v.get("expert_weights") == "random" for _, v in vs)


def test_demo_ablation_is_offline_and_small():
    suite = load_suite("ablation-demo")
    assert suite.dataset_names() == ["digits"]
    for _, v in variants("ablation-demo"):
        assert v["expert_weights"] == "random" and v["epochs"] <= 10
    jobs = expand(suite, {"digits": [str(d) for d in range(10)]})
    assert len(jobs) == 130


@pytest.mark.parametrize("name", ["ablation", "ablation-demo"])
def test_suite_validates_against_the_registered_method(name):
    from bench.datasets import DATASETS
    from bench.methods import METHODS

    suite = load_suite(name)
    missing = [m for m in suite.method_names() if m not in METHODS]
    missing += [d for d in suite.dataset_names() if d not in DATASETS]
    if missing:
        pytest.skip(f"suite {name} needs {', '.join(missing)}, not registered in this checkout")
    _, jobs = select_jobs(name, check_data=False)  # resolves every variant's config
    assert jobs
