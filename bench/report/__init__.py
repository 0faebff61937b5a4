"""Reporting: records -> tables, figures, the HTML report and the CI score check.

``aggregate`` (pure DataFrame functions) -> ``render`` (markdown, LaTeX, CSV, HTML); ``reference``
(published numbers, shipped in ``published/``); ``plots`` and ``figures``; ``html`` (``bench
report``); ``check`` (``bench check`` against a committed baseline).
"""
