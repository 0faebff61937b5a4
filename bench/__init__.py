"""bench: a reproduction and benchmarking harness for image anomaly detection.

Built around Multiresolution Knowledge Distillation (MKD; Salehi et al., CVPR 2021).
The pipeline is suite -> jobs -> runner -> method -> metrics -> record -> table, one
sub-package a stage: ``run`` (suites, jobs, runner, job execution), ``methods`` and ``datasets``,
``core`` (errors, registry, config, paths, environment, metrics), ``records``, ``report``;
``perf`` measures speed and ``cli`` is the command line. See docs/architecture.md.
"""

__version__ = "0.1.0"
