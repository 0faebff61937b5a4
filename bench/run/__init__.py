"""Scheduling: suite -> jobs -> runner -> one job in a worker -> record.

``suites`` (YAML) expand into job keys (``jobs``, ``select``); the ``runner`` plans (resume),
hands the rest to a backend (``backends.local``, ``backends.dask``), each job is claimed and run
by ``dispatch`` (``claims``, ``isolate``, ``workers``), and ``execute.run_job`` builds the dataset
and the method, fits, scores, computes the metrics and writes the record.
"""
