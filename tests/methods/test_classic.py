"""Classic detectors: pixels or backbone features, determinism, provenance in the record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.core.errors import UsageError
from bench.core.metrics import image_auroc
from bench.datasets import DATASETS
from bench.methods import METHODS
from bench.methods.base import RunContext
from bench.run.execute import run_job
from bench.run.jobs import Job
from tests.helpers import blobs_task

CLASSIC = ["ocsvm", "kde", "iforest"]


@pytest.fixture(scope="module")
def blobs():
    return blobs_task(n_train=24, n_test=20, size=32, seed=1)


def _fit_score(name, train, test, seed=0, **overrides):
    method = METHODS.get(name).build("", overrides)
    method.fit(train, RunContext(seed=seed))
    return method, method.score(test, RunContext(seed=seed)).image


def test_iforest_is_deterministic_per_seed(blobs):
    train, test = blobs
    _, a = _fit_score("iforest", train, test, seed=3)
    _, b = _fit_score("iforest", train, test, seed=3)
    _, c = _fit_score("iforest", train, test, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert ((a > 0) & (a <= 1)).all()  # Liu et al.'s s(x, psi) lies in (0, 1]


def test_iforest_standard_settings():
    cfg = METHODS.get("iforest").config()
    assert (cfg.n_estimators, cfg.max_samples, cfg.max_features, cfg.pca_variance) == (
        100, 256, 1.0, None)
    assert METHODS.get("ocsvm").config().pca_variance == 0.95
    # PCA can be switched off from the CLI for every classic detector
    assert METHODS.get("ocsvm").config(overrides={"pca_variance": "none"}).pca_variance is None


@pytest.mark.parametrize("name", CLASSIC)
@pytest.mark.parametrize("task", ["3", "8"])
def test_beats_chance_on_digits(name, task):
    dataset = DATASETS.get("digits")
    method = METHODS.get(name).build(dataset.family)
    train, test = dataset.load(task, None, 0, method.input_spec())
    method.fit(train, RunContext(seed=0))
    assert image_auroc(test.labels, method.score(test, RunContext(seed=0)).image) > 0.6


@pytest.mark.parametrize("name,backbone,layer,identity", [
    ("ocsvm", "vgg16", None, "vgg16:random:0"),
    ("kde", "resnet18", "layer3", "resnet18:random:0"),
    ("iforest", "resnet18", None, "resnet18:random:0"),
])
def test_backbone_features_record_the_extractor(blobs, name, backbone, layer, identity):
    train, test = blobs
    method, scores = _fit_score(name, train, test, features="backbone", backbone=backbone,
                                backbone_weights="random", backbone_layer=layer)
    assert method.extractor_ is not None
    assert method.extractor_.layers == ((layer or ("pool5" if backbone == "vgg16" else "layer4")),)
    assert method.provenance()["expert"] == identity
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    pixels, _ = _fit_score(name, train, test)
    assert pixels.provenance()["expert"] is None


def test_backbone_without_weights_is_a_clear_error(blobs):
    train, _ = blobs
    method = METHODS.get("ocsvm").build("", {"features": "backbone"})
    with pytest.raises(UsageError, match="backbone_weights=imagenet"):
        method.fit(train, RunContext())
    with pytest.raises(UsageError, match="not one of"):
        METHODS.get("kde").build("", {"features": "cnn"})


def test_record_names_the_backbone(tmp_path):
    job = Job.make("t", "iforest", "digits", "1", 0,
                   {"features": "backbone", "backbone": "resnet18", "backbone_weights": "random",
                    "image_size": 16})
    summary = run_job(job, results_root=tmp_path, device="cpu")
    assert summary.status == "ok", summary.error
    record = json.loads((tmp_path / "runs" / "t" / f"{job.id}.json").read_text())
    assert record["expert"] == "resnet18:random:0"
    assert record["config"]["features"] == "backbone"
    assert record["metrics"]["image_auroc"] > 0.5


def test_max_train_fits_on_a_seeded_subset_and_oct_preset_uses_it():
    from bench.methods import METHODS
    from bench.methods.base import RunContext
    from tests.helpers import blobs_task

    train, test = blobs_task(n_train=30, n_test=10)
    spec = METHODS.get("ocsvm")
    assert spec.config("retinal_oct").max_train == 5000
    assert spec.config("mnist").max_train is None
    a = spec.build("", {"max_train": 12}).fit(train, RunContext(seed=0))
    b = spec.build("", {"max_train": 12}).fit(train, RunContext(seed=0))
    c = spec.build("", {"max_train": 12}).fit(train, RunContext(seed=1))
    assert a.pca_.n_samples_ == 12
    assert (a.score(test, RunContext()).image == b.score(test, RunContext()).image).all()
    assert not (a.score(test, RunContext()).image == c.score(test, RunContext()).image).all()


def test_ocsvm_on_repeated_grey_channels_equals_the_pca_of_all_channels(monkeypatch):
    """The folded PCA (one channel, projections x √C) is the PCA of the C-fold copy."""
    import bench.methods.classic as classic

    train, test = DATASETS.get("digits").load("3", None, seed=0)
    assert classic.repeated_channels(train) and train.images.shape[1] == 3
    pixels = train.images.shape[2] * train.images.shape[3]
    folded, a = _fit_score("ocsvm", train, test)
    assert folded.folded_ and folded.pca_.n_features_in_ == pixels
    monkeypatch.setattr(classic.OneClassSVMDetector, "fold_channels", False)
    full, b = _fit_score("ocsvm", train, test)
    assert not full.folded_ and full.pca_.n_features_in_ == 3 * pixels
    assert folded.n_components_ == full.n_components_
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # test images whose channels differ go through the general formula (sum over channels)
    tinted = test.subset(range(len(test)))
    tinted.images = tinted.images.clone()
    tinted.images[:, 1] //= 2
    z_folded = folded._test_features(tinted, RunContext())
    z_full = full._test_features(tinted, RunContext())
    # equal up to the sign of each component (eigenvectors are defined up to sign)
    np.testing.assert_allclose(np.abs(z_folded), np.abs(z_full), rtol=1e-3, atol=1e-4)


def test_kde_keeps_the_pca_of_all_channels():
    train, test = DATASETS.get("digits").load("3", None, seed=0)
    kde, _ = _fit_score("kde", train, test)
    assert not kde.folded_
    assert kde.pca_.n_features_in_ == 3 * train.images.shape[2] * train.images.shape[3]
