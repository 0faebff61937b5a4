"""An example bench plugin: a detector and a dataset, registered through entry points."""

from bench_plugin_example.dataset import CSVImages
from bench_plugin_example.method import MAX_VARIANT, RandomFeatureDistance

__all__ = ["MAX_VARIANT", "CSVImages", "RandomFeatureDistance"]
__version__ = "0.1.0"
