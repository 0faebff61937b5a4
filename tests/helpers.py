"""Small synthetic fixtures shared by tests: the task of the public contract check."""

from __future__ import annotations

from bench.testing import synthetic_task as blobs_task

__all__ = ["blobs_task"]
