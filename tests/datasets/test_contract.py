"""The dataset contract as the public check, :func:`bench.testing.check_dataset`, over the
built-in protocols (on fake data in their real layouts), and what it catches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.datasets.base import InputSpec, TaskData
from bench.testing import Synthetic, check_dataset
from tests.datasets.fakes import fake_brainmri, fake_headct, fake_mvtec, fake_oct


@pytest.mark.parametrize("name", ["digits", "textures"])
def test_embedded_datasets_pass(name):
    assert check_dataset(name).ok


@pytest.mark.parametrize("make", [
    lambda root: ("mvtec", fake_mvtec(root)),
    lambda root: (f"folder:{fake_mvtec(root).resolve()}", None),
    lambda root: ("retinal_oct", fake_oct(root, n_train=3, n_test=2)),
    lambda root: ("headct", fake_headct(root, n_normal=14, n_hemorrhage=4)),
    lambda root: ("brainmri", fake_brainmri(root, n_no=14, n_yes=4)),
], ids=["mvtec", "folder", "retinal_oct", "headct", "brainmri"])
def test_on_disk_datasets_pass_on_fake_data(make, tmp_path):
    name, _ = make(tmp_path)
    report = check_dataset(name, root=tmp_path)
    assert report.ok and all(c.passed for c in report.checks), report.summary()


class _TrainsOnAnomalies(Synthetic):
    def load(self, task: str, root: Path | None, seed: int,
             spec: InputSpec | None = None) -> tuple[TaskData, TaskData]:
        train, test = super().load(task, root, seed, spec)
        return TaskData(train.images, np.ones(len(train), dtype=np.int64)), test


class _IgnoresTheSize(Synthetic):
    def load(self, task, root, seed, spec=None):
        return super().load(task, root, seed, InputSpec(size=48))


class _UndeclaredMasks(Synthetic):
    has_masks = False


class _Random(Synthetic):
    def load(self, task, root, seed, spec=None):
        train, test = super().load(task, root, seed, spec)
        noise = torch.randint(0, 2, train.images.shape, dtype=torch.uint8)
        return TaskData(train.images + noise, train.labels), test


def _failed(report) -> dict[str, str]:
    return {c.name: c.detail for c in report.failures}


def test_check_dataset_names_what_is_broken():
    failed = _failed(check_dataset(_TrainsOnAnomalies, raise_on_failure=False))
    assert "training split holds anomalous images" in failed["load"]
    failed = _failed(check_dataset(_IgnoresTheSize(), raise_on_failure=False))
    assert "of shape (3, 48, 48), asked (3, 32, 32)" in failed["load"]
    failed = _failed(check_dataset(_UndeclaredMasks, raise_on_failure=False))
    assert failed == {"masks": "load() gives masks but has_masks is False"}
    failed = _failed(check_dataset(_Random, raise_on_failure=False))
    assert list(failed) == ["same seed, same data"]


def test_missing_data_fails_the_check_with_the_reason(tmp_path):
    report = check_dataset("mvtec", root=tmp_path, raise_on_failure=False)
    assert [c.name for c in report.failures] == ["data available"]
    assert "mvtec not found" in report.failures[0].detail
    with pytest.raises(AssertionError, match="data available: mvtec not found"):
        report.raise_for_failures()
