"""anomalib's models as bench methods (plugins/anomalib, docs/zoo.md), with the extra installed
(``pip install -e '.[anomalib]'``; ``.ci/run`` installs it after the core tests and runs this
module). Skipped where anomalib is not installed: the core needs none. Tiny sizes, random
weights, the CPU."""

from __future__ import annotations

import dataclasses
import inspect
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

pytest.importorskip("anomalib")

from bench.methods import METHODS
from bench.testing import check_method
from tests.conftest import invoke

VERSION = metadata.version("anomalib")
RANDOM = {"backbone": "resnet18", "backbone_weights": "random", "image_size": 32}
#: tiny settings per model: few epochs, small flows, few coreset points
TINY = {
    "anomalib.Patchcore": {**RANDOM, "coreset_sampling_ratio": 0.02},
    "anomalib.Padim": RANDOM,
    "anomalib.Dfm": {**RANDOM, "pooling_kernel_size": 2},
    "anomalib.Fastflow": {**RANDOM, "flow_steps": 2, "epochs": 2, "batch_size": 8},
    "anomalib.ReverseDistillation": {**RANDOM, "epochs": 1, "batch_size": 8},
    "anomalib.Cflow": {**RANDOM, "layers": ("layer2", "layer3"), "fiber_batch_size": 16,
                       "coupling_blocks": 2, "condition_vector": 16, "epochs": 1,
                       "batch_size": 8},
    "anomalib.Stfpm": {**RANDOM, "epochs": 2, "batch_size": 8},
}
#: config fields that are bench's, or anomalib's training recipe, not constructor arguments
NOT_ARGUMENTS = {"image_size", "batch_size", "backbone_weights", "epochs", "lr", "betas",
                 "momentum", "weight_decay", "milestones"}


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").rglob("*.json"))
            if p.parent.parent.name == "runs"]


def test_every_model_is_registered_from_this_distribution():
    names = METHODS.names("anomalib.*")
    assert names == sorted(["anomalib.Patchcore", "anomalib.Padim", "anomalib.Dfm",
                            "anomalib.Fastflow", "anomalib.ReverseDistillation",
                            "anomalib.Cflow", "anomalib.Stfpm", "anomalib.Draem"])
    origin = METHODS.origin("anomalib.Padim")
    assert origin is not None and origin.distribution == "bench-mkd"


@pytest.mark.parametrize("name", sorted(TINY))
def test_the_model_passes_the_method_contract(name):
    report = check_method(name, overrides=TINY[name], raise_on_failure=False)
    assert report.ok, str(report)


@pytest.mark.parametrize("name", sorted(METHODS.names("anomalib.*")))
def test_config_fields_are_the_constructor_arguments_with_anomalib_defaults(name):
    """The record's config names the model's constructor config: same names, same defaults
    (``pre_trained`` is ``backbone_weights``)."""
    import anomalib.models

    cls = METHODS.get(name).cls
    params = inspect.signature(getattr(anomalib.models, cls.__name__).__init__).parameters
    for f in dataclasses.fields(cls.Config):
        if f.name in NOT_ARGUMENTS:
            continue
        assert f.name in params, f"{name}: {f.name} is no argument of anomalib's {cls.__name__}"
        default = params[f.name].default
        ours = f.default
        if name == "anomalib.Draem" and f.name == "dtd_dir":
            continue  # anomalib downloads to ./datasets/dtd; here it must be given
        if hasattr(default, "value"):
            default = default.value  # enums
        if isinstance(default, (list, tuple)):
            default, ours = tuple(default), tuple(ours)  # type: ignore[arg-type]
        assert ours == default, f"{name}.{f.name}: {ours!r} here, {default!r} in anomalib"


def test_bench_run_records_anomalibs_version_config_and_weights(cli, results):
    res = invoke(cli, results, "run", "--method", "anomalib.Padim", "--method", "anomalib.Dfm",
                 "--dataset", "textures", "--task", "brick", "--set", "backbone=resnet18",
                 "--set", "backbone_weights=random")
    assert res.exit_code == 0, res.output
    recs = records(results)
    assert {r["job"]["method"] for r in recs} == {"anomalib.Padim", "anomalib.Dfm"}
    for rec in recs:
        assert rec["status"] == "ok", rec.get("error")
        assert rec["versions"]["anomalib"] == VERSION
        assert rec["plugin"]["distribution"] == "bench-mkd"
        assert rec["expert"] == "resnet18:random:0"
        assert rec["config"]["backbone"] == "resnet18"
        assert 0.5 < rec["metrics"]["image_auroc"] <= 1.0
        maps = np.load(results / "runs" / rec["job"]["suite"] / rec["id"] / "maps.npz")
        assert maps["maps"].shape[-2:] == tuple(rec["data"]["image_size"])


def test_random_weights_are_the_native_methods_random_weights():
    """At one seed, anomalib.Padim and bench's padim see the same random ResNet-18."""
    from bench.methods.backbones import build_trunk

    spec = METHODS.get("anomalib.Padim")
    method = spec.build("textures", {"backbone_weights": "random"})
    from anomalib.models.image.padim.torch_model import PadimModel

    model = PadimModel(backbone="resnet18", layers=["layer1", "layer2"], pre_trained=False)
    assert method.load_backbone(model, seed=3) == "resnet18:random:3"
    trunk, _ = build_trunk("resnet18", "random", 3)
    theirs = model.feature_extractor.feature_extractor.state_dict()
    assert all(torch.equal(v, trunk.state_dict()[k]) for k, v in theirs.items())


@pytest.mark.parametrize(("method", "field"), [("anomalib.Stfpm", "backbone_weights"),
                                               ("anomalib.Draem", "dtd_dir")])
def test_models_that_download_stop_before_any_job_naming_what_to_give(cli, results, method,
                                                                       field):
    res = invoke(cli, results, "run", "--method", method, "--dataset", "digits", "--task", "3")
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("bench: error:")]
    assert len(errors) == 1 and f"--set {field}=PATH" in errors[0], res.output
    assert not (results / "runs").exists()


def test_stfpm_runs_given_its_teachers_weights_as_a_file(cli, results, tmp_path):
    path = tmp_path / "teacher.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    res = invoke(cli, results, "run", "--method", "anomalib.Stfpm", "--dataset", "digits",
                 "--task", "3", "--set", f"backbone_weights={path}", "--set", "epochs=1")
    assert res.exit_code == 0, res.output
    (rec,) = records(results)
    assert rec["status"] == "ok", rec.get("error")
    assert rec["expert"].startswith("resnet18:file:teacher.pth:sha256=")
    assert rec["versions"]["anomalib"] == VERSION


@pytest.mark.slow  # DRAEM's two U-Nets are large: minutes on two CPU cores
def test_draem_runs_given_a_folder_of_texture_images(cli, results, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "dtd" / "banded").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(
            tmp_path / "dtd" / "banded" / f"{i}.jpg")
    res = invoke(cli, results, "run", "--method", "anomalib.Draem", "--dataset", "digits",
                 "--task", "3", "--set", f"dtd_dir={tmp_path / 'dtd'}", "--set", "epochs=1")
    assert res.exit_code == 0, res.output
    (rec,) = records(results)
    assert rec["status"] == "ok", rec.get("error")
    assert rec["versions"]["anomalib"] == VERSION
