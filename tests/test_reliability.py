"""Issue 25: guards that a value could switch off, reading that ran code, options that were
ignored. Each test reproduced its item before the fix; the one-line table is in
``tests/test_bad_inputs.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bench.core import environment
from tests.conftest import invoke
from tests.test_plugins import isolated_path  # noqa: F401 (a fixture)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


def test_reading_the_commit_never_rewrites_the_git_index(tmp_path):
    """Item 7: ``git status`` refreshes a stale index under ``.git/index.lock`` (a user's own
    ``git commit`` at that moment fails); the commit is read without writing anything."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "f.txt").write_text("x")
    _git(tmp_path, "add", "f.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    index = tmp_path / ".git" / "index"
    before = index.stat().st_mtime_ns, index.read_bytes()
    time.sleep(0.05)
    os.utime(tmp_path / "f.txt")  # same content, new stat: git status would refresh the index
    assert environment.commit_of(tmp_path) is not None
    assert (index.stat().st_mtime_ns, index.read_bytes()) == before


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         isolated_path: None) -> Path:  # noqa: F811
    """The current folder, where modules named ``module:Class`` are looked for."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for entry in ("", str(work)):
        while entry in sys.path:
            sys.path.remove(entry)
    return work


def test_a_plugin_that_exits_while_it_is_imported_is_one_line(cli, results, here):
    """Item 9: ``sys.exit(3)`` in a plugin module ended bench with exit 3 and no output."""
    name = f"exiting_{uuid.uuid4().hex[:8]}"
    (here / f"{name}.py").write_text("import sys\nsys.exit(3)\n", encoding="utf-8")
    res = invoke(cli, results, "run", "--method", f"{name}:Mean", "--dataset", "digits",
                 "--task", "3")
    lines = [ln for ln in res.output.splitlines() if ln.startswith("bench: error:")]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert f"cannot import {name}: SystemExit: 3" in lines[0]
