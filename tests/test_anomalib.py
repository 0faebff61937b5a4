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
                 "momentum", "weight_decay", "milestones", "max_steps"}
#: fields for files anomalib downloads itself, which must be given here (no anomalib default)
GIVEN_FILES = {"dtd_dir", "teacher_weights", "penalty_images"}


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").rglob("*.json"))
            if p.parent.parent.name == "runs"]


def test_every_model_is_registered_from_this_distribution():
    names = METHODS.names("anomalib.*")
    assert names == sorted(["anomalib.Patchcore", "anomalib.Padim", "anomalib.Dfm",
                            "anomalib.Fastflow", "anomalib.ReverseDistillation",
                            "anomalib.Cflow", "anomalib.Stfpm", "anomalib.Draem",
                            "anomalib.EfficientAd"])
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
        if f.name in NOT_ARGUMENTS or f.name in GIVEN_FILES:
            continue
        assert f.name in params, f"{name}: {f.name} is no argument of anomalib's {cls.__name__}"
        default = params[f.name].default
        ours = f.default
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


@pytest.mark.parametrize(("method", "field", "given"), [
    ("anomalib.Stfpm", "backbone_weights", {}),
    ("anomalib.Draem", "dtd_dir", {}),
    ("anomalib.EfficientAd", "teacher_weights", {}),
    ("anomalib.EfficientAd", "penalty_images", {"teacher_weights": "teacher.pth"})])
def test_models_that_download_stop_before_any_job_naming_what_to_give(cli, results, tmp_path,
                                                                       method, field, given):
    sets = []
    for key, name in given.items():
        torch.save(efficient_ad_teacher().state_dict(), tmp_path / name)
        sets += ["--set", f"{key}={tmp_path / name}"]
    res = invoke(cli, results, "run", "--method", method, "--dataset", "digits", "--task", "3",
                 *sets)
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


# ----------------------------------------------------------------------------- EfficientAD
def efficient_ad_teacher() -> torch.nn.Module:
    """A random small PDN: the teacher's architecture, standing in for anomalib's download."""
    from anomalib.models.image.efficient_ad.torch_model import SmallPatchDescriptionNetwork

    torch.manual_seed(0)
    return SmallPatchDescriptionNetwork(out_channels=384)


def efficient_ad_files(tmp_path: Path) -> list[str]:
    """``--set`` arguments for a random teacher's state dict and a folder of random penalty
    images (in class folders, as ImageNette)."""
    torch.save(efficient_ad_teacher().state_dict(), tmp_path / "teacher.pth")
    rng = np.random.default_rng(1)
    for i in range(3):
        (tmp_path / "penalty" / f"n0{i}").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 56, 3), dtype=np.uint8)).save(
            tmp_path / "penalty" / f"n0{i}" / f"{i}.JPEG")
    return ["--set", f"teacher_weights={tmp_path / 'teacher.pth'}",
            "--set", f"penalty_images={tmp_path / 'penalty'}"]


def tiny_folder(root: Path) -> Path:
    """A folder dataset in MVTec's layout with a handful of images: EfficientAD takes 256 px
    at least, so a few images keep a run short on the CPU."""
    rng = np.random.default_rng(2)
    for split, kind, n in (("train", "good", 3), ("test", "good", 2), ("test", "spot", 2)):
        (root / "tiny" / split / kind).mkdir(parents=True)
        for i in range(n):
            image = rng.integers(90, 110, (64, 64, 3), dtype=np.uint8)
            if kind == "spot":
                image[20:40, 20:40] = 255
            Image.fromarray(image).save(root / "tiny" / split / kind / f"{i:03d}.png")
    return root


def test_efficient_ad_runs_given_its_teacher_and_penalty_images(cli, results, tmp_path):
    data = tiny_folder(tmp_path / "data")
    res = invoke(cli, results, "run", "--method", "anomalib.EfficientAd", "--dataset",
                 f"folder:{data}", "--task", "tiny", *efficient_ad_files(tmp_path),
                 "--set", "max_steps=2", "--set", "batch_size=4")
    assert res.exit_code == 0, res.output
    (rec,) = records(results)
    assert rec["status"] == "ok", rec.get("error")
    assert rec["versions"]["anomalib"] == VERSION
    assert rec["expert"].startswith("pdn_small:file:teacher.pth:sha256=")
    assert rec["config"]["penalty_images"] == str(tmp_path / "penalty")
    assert rec["data"]["image_size"] == [256, 256]
    maps = np.load(results / "runs" / rec["job"]["suite"] / rec["id"] / "maps.npz")
    assert maps["maps"].shape[-2:] == (256, 256)
    assert np.isfinite(maps["maps"]).all()


def test_efficient_ad_normalizes_its_maps_with_training_quantiles_only(tmp_path):
    """Teacher mean/std and map quantiles come from the training images (anomalib: its
    validation set's normal images); scoring test images changes neither."""
    from anomalib.models.image.efficient_ad.torch_model import reduce_tensor_elems

    from bench.datasets.base import TaskData
    from bench.methods.base import RunContext

    sets = efficient_ad_files(tmp_path)
    overrides = dict(s.split("=", 1) for s in sets[1::2])
    method = METHODS.get("anomalib.EfficientAd").build("", {**overrides, "max_steps": 1})
    gen = torch.Generator().manual_seed(0)
    train = TaskData(torch.randint(0, 255, (3, 3, 256, 256), generator=gen,
                                   dtype=torch.uint8), [0, 0, 0])
    test = TaskData(torch.randint(0, 255, (2, 3, 256, 256), generator=gen,
                                  dtype=torch.uint8), [0, 1])
    method.fit(train, RunContext())
    model = method.model_
    with torch.no_grad():
        st, ae = model.get_maps(train.batch(slice(None)), normalize=False)
        teacher = model.teacher(train.batch(slice(None)))
    for name, maps in (("st", st), ("ae", ae)):
        flat = reduce_tensor_elems(maps)
        assert torch.allclose(model.quantiles[f"qa_{name}"], torch.quantile(flat, 0.9))
        assert torch.allclose(model.quantiles[f"qb_{name}"], torch.quantile(flat, 0.995))
    assert torch.allclose(model.mean_std["mean"].flatten(), teacher.mean(dim=(0, 2, 3)),
                          atol=1e-5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = method.score(test, RunContext())
    assert scores.maps is not None and scores.maps.shape == (2, 256, 256)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert method.provenance()["versions"] == {"anomalib": VERSION}


@pytest.mark.slow  # 256 px at least (its encoder): minutes on two CPU cores
def test_efficient_ad_runs_on_textures(cli, results, tmp_path):
    res = invoke(cli, results, "run", "--method", "anomalib.EfficientAd", "--dataset",
                 "textures", "--task", "brick", *efficient_ad_files(tmp_path),
                 "--set", "max_steps=3")
    assert res.exit_code == 0, res.output
    (rec,) = records(results)
    assert rec["status"] == "ok", rec.get("error")
    assert rec["versions"]["anomalib"] == VERSION


def test_the_peer_benchmark_runs_both_sides_and_prints_the_ratios(capsys):
    """``benchmarks/anomalib_cpu.py`` (docs/zoo.md, docs/performance.md) at a tiny size: both
    sides of a pair run, and the ratios are the figures' own quotients."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "anomalib_cpu.py"
    spec = importlib.util.spec_from_file_location("anomalib_cpu", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--pairs", "stfpm,padim", "--train", "4", "--test", "4", "--size", "32",
                       "--epochs", "1", "--threads", "1"])
    text = capsys.readouterr().out
    assert "anomalib.Stfpm" in text and "anomalib.Padim" in text and "x faster" in text
    for pair in ("stfpm", "padim"):
        got = out["pairs"][pair]
        ours, theirs = got["bench"][0], got["anomalib"][0]
        assert got["speedup"] == pytest.approx(theirs["total_s"] / ours["total_s"])
        assert 0.0 <= ours["image_auroc"] <= 1.0 and 0.0 <= theirs["image_auroc"] <= 1.0
