"""Records: one JSON file per job (its key, resolved config, metrics, provenance), written
atomically, and the small per-job artifacts beside it. The only reader and writer of
``results/runs/``; fields are documented in ``results/README.md``.
"""
