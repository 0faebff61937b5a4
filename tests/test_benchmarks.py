"""``benchmarks/mkd_cuda.py`` runs on the CPU at tiny sizes, projects the paper grid, and
refuses CUDA where there is none."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mkd_cuda.py"
TINY = ["--cifar-images", "4", "--cifar-size", "32", "--mvtec-images", "4", "--mvtec-size", "32",
        "--probe-sizes", "", "--test-images", "3", "--epochs", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def bench_script():
    spec = importlib.util.spec_from_file_location("mkd_cuda", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class builds
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_small_cpu_run_measures_and_projects(bench_script, tmp_path, capsys):
    out = tmp_path / "cuda.json"
    result = bench_script.main(["--device", "cpu", *TINY, "--json", str(out)])
    text = capsys.readouterr().out
    assert "CIFAR-10-sized class: 4 images at 32 px" in text and "img/s" in text
    assert "projected paper grid" in text and "assumptions:" in text
    rates = result["rates"]["32"]
    assert rates["train_on"] > 0 and rates["eval_cached"] > 0 and rates["localize"] > 0
    jobs = result["projection"]["jobs"]
    assert len(jobs) == 288 and {j["method"] for j in jobs} == {"mkd", "mkd_single"}
    cifar = next(j for j in jobs if j["dataset"] == "cifar10")
    assert (cifar["size"], cifar["train"], cifar["test"], cifar["epochs"],
            cifar["evaluations"]) == (224, 5000, 10000, 202, 22)
    assert all(j["seconds"] > 0 for j in jobs)
    assert any("scaled by the pixel count" in a for a in result["projection"]["assumptions"])
    saved = json.loads(out.read_text())
    assert saved["projection"]["total_s"] == pytest.approx(result["projection"]["total_s"])
    assert saved["environment"]["device"] == "cpu"


def test_task_sizes(bench_script):
    sizes = bench_script.task_sizes
    assert sizes("mvtec", "bottle") == (209, 83, True)
    assert sizes("cifar10", "3") == (5000, 10000, False)
    assert sizes("mnist", "3") == (6000, 10000, False)
    assert sizes("headct", "normal") == (90, 110, False)
    assert sizes("brainmri", "normal") == (88, 165, False)
    assert sizes("retinal_oct", "NORMAL")[1] == 968


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_refuses_cuda_without_it_and_auto_warns(bench_script, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_script.main(["--device", "cuda", *TINY])
    assert exc.value.code == 2
    assert "CUDA is not available here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_script.main(["--device", "cpu", "--amp", *TINY])
    with pytest.warns(UserWarning, match="measuring on the CPU"):
        result = bench_script.main(["--device", "auto", *TINY, "--budget-s", "0"])
    assert result["environment"]["device"] == "cpu"


def test_native_pixel_metrics_benchmark_streams_and_matches_the_exact_values(capsys):
    spec = importlib.util.spec_from_file_location(
        "native_pixel_metrics", SCRIPT.parent / "native_pixel_metrics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--images", "6", "--size", "96", "--model-size", "24", "--stream",
                       "--exact"])
    text = capsys.readouterr().out
    assert "6 masks of 96 px" in text and "quantiles" in text and "largest difference" in text
    assert out["max_diff"] < 1e-3 and 0 <= out["pixel_auroc"] <= 1
