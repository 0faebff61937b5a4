"""anomalib's models as bench methods (``anomalib.Patchcore``, ``anomalib.Padim``, ...).

A plugin that lives in bench's repository and installs with it: ``pip install -e '.[anomalib]'``
installs anomalib, and the entry points of group ``bench.methods`` (declared by bench's own
``pyproject.toml``) name the classes of :mod:`bench_anomalib.models`. Without anomalib those
entry points raise :class:`~bench.core.errors.MissingDependency` while loading: bench leaves the
names out quietly and a run that names one stops with one line saying to install the extra.

Each method builds anomalib's own torch model (``anomalib.models.image.<model>.torch_model``) and
trains it with anomalib's own loss, on the job's images and device, in a small loop of ours that
follows anomalib's training recipe (optimizer, learning rate, epochs). anomalib's ``Engine``,
Lightning trainer and datamodules are not used: they would rescale scores with a min-max
normalization fitted on the test set and write files. Scores are the model's raw outputs
(higher = more anomalous), maps at the input size. See docs/zoo.md.
"""

from __future__ import annotations

#: the anomalib versions this plugin is written against (its extra pins the same range)
ANOMALIB_RANGE = (">=2.7", "<2.8")
