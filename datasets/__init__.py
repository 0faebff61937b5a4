"""Dataset protocols, registered explicitly by name in :data:`DATASETS`.

Note: ``datasets`` is also the import name of another popular library. Install this project in
its own virtual environment (see README); a test checks that this package is the one imported.
"""

from __future__ import annotations

from bench.registry import Registry
from datasets.base import DatasetProtocol, InputSpec, TaskData
from datasets.digits import Digits
from datasets.textures import Textures

DATASETS: Registry[DatasetProtocol] = Registry("dataset")
DATASETS.add("digits", Digits())
DATASETS.add("textures", Textures())

__all__ = ["DATASETS", "DatasetProtocol", "InputSpec", "TaskData"]
