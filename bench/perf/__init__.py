"""Performance: measure any registered method's throughput and memory, summarize, compare.

- :mod:`bench.perf.measure`: images/s and peak memory of ``fit``/``score``/localization;
- :mod:`bench.perf.summary`: the rows and sentences ``bench perf`` prints;
- :mod:`bench.perf.compare`: a result against a saved baseline (``--compare``).
"""
