"""Dataset protocols, registered explicitly by name in :data:`DATASETS`.

Besides the registered names, ``DATASETS.get("folder:/abs/path")`` gives the ``folder`` dataset
reading that path (see :mod:`datasets.folder`). Plugins add names too: installed distributions
declaring ``[project.entry-points."bench.datasets"]`` (a :class:`~datasets.base.DatasetProtocol`
subclass or instance per entry point), and ``package.module:Class`` names (see
:mod:`bench.core.registry`).

This package is installed as ``bench.datasets`` (never as a top-level ``datasets``), so it
coexists with Hugging Face's ``datasets`` in one environment.
"""

from __future__ import annotations

from bench.datasets.base import DatasetProtocol, InputSpec, TaskData, as_protocol
from bench.datasets.btad import BTAD
from bench.datasets.digits import Digits
from bench.datasets.folder import DatasetRegistry, Folder
from bench.datasets.medical import BrainMRI, HeadCT
from bench.datasets.mpdd import MPDD
from bench.datasets.mvtec import MVTec
from bench.datasets.mvtec_ad2 import MVTecAD2
from bench.datasets.mvtec_loco import MVTecLOCO
from bench.datasets.retinal_oct import RetinalOCT
from bench.datasets.textures import Textures
from bench.datasets.torchvision_sets import CIFAR10, MNIST, FashionMNIST
from bench.datasets.visa import VisA

#: the entry-point group of dataset plugins
GROUP = "bench.datasets"
DATASETS = DatasetRegistry("dataset", group=GROUP, adapt=as_protocol)
DATASETS.add("digits", Digits())
DATASETS.add("textures", Textures())
DATASETS.add("mnist", MNIST())
DATASETS.add("fashion_mnist", FashionMNIST())
DATASETS.add("cifar10", CIFAR10())
DATASETS.add("mvtec", MVTec())
DATASETS.add("visa", VisA())
DATASETS.add("btad", BTAD())
DATASETS.add("mpdd", MPDD())
DATASETS.add("mvtec_ad2", MVTecAD2())
DATASETS.add("mvtec_loco", MVTecLOCO())
DATASETS.add("retinal_oct", RetinalOCT())
DATASETS.add("headct", HeadCT())
DATASETS.add("brainmri", BrainMRI())
DATASETS.add("folder", Folder())

__all__ = ["DATASETS", "GROUP", "DatasetProtocol", "InputSpec", "TaskData"]
