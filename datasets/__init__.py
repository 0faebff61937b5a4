"""Dataset protocols, registered explicitly by name in :data:`DATASETS`.

Besides the registered names, ``DATASETS.get("folder:/abs/path")`` gives the ``folder`` dataset
reading that path (see :mod:`datasets.folder`).

Note: ``datasets`` is also the import name of another popular library. Install this project in
its own virtual environment (see README); a test checks that this package is the one imported.
"""

from __future__ import annotations

from datasets.base import DatasetProtocol, InputSpec, TaskData
from datasets.digits import Digits
from datasets.folder import DatasetRegistry, Folder
from datasets.medical import BrainMRI, HeadCT
from datasets.mvtec import MVTec
from datasets.retinal_oct import RetinalOCT
from datasets.textures import Textures
from datasets.torchvision_sets import CIFAR10, MNIST, FashionMNIST

DATASETS = DatasetRegistry("dataset")
DATASETS.add("digits", Digits())
DATASETS.add("textures", Textures())
DATASETS.add("mnist", MNIST())
DATASETS.add("fashion_mnist", FashionMNIST())
DATASETS.add("cifar10", CIFAR10())
DATASETS.add("mvtec", MVTec())
DATASETS.add("retinal_oct", RetinalOCT())
DATASETS.add("headct", HeadCT())
DATASETS.add("brainmri", BrainMRI())
DATASETS.add("folder", Folder())

__all__ = ["DATASETS", "DatasetProtocol", "InputSpec", "TaskData"]
