"""The README's two commands and the docs' `bench ...` examples stay true to the code.

- The README's command 2 installs and runs the tests the way `.ci/run` does; command 1 runs the
  demo.
- Every `bench ...` line in a fenced code block of README.md and docs/*.md names a real
  (sub)command of the CLI, and only options that command (or the root group) has; `--help` of
  each such command exits 0.
- Relative links between the pages point at files that exist.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*```")


def fenced_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line inside a fenced code block; `\\` continuations joined."""
    out: list[tuple[int, str]] = []
    inside = False
    pending = ""
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def fenced_blocks(text: str) -> list[str]:
    blocks, current, inside = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            if inside:
                blocks.append("\n".join(current))
                current = []
            inside = not inside
        elif inside:
            current.append(line)
    return blocks


def bench_commands(line: str) -> list[list[str]]:
    """The argument lists of every `bench ...` command on a shell line (after `bench`)."""
    line = re.sub(r"(^|\s)#.*$", "", line)  # a trailing comment
    found = []
    for part in re.split(r"&&|\|\||;|\s\|\s", line):
        try:
            words = shlex.split(part)
        except ValueError:
            continue
        if words[:1] == ["bench"]:
            found.append(words[1:])
        elif words[:3] == ["python", "-m", "bench"]:
            found.append(words[3:])
    return found


def _opts(command: click.Command) -> dict[str, click.Parameter]:
    names: dict[str, click.Parameter] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                names[name] = param
    names["--help"] = names["-h"] = click.Option(["--help"], is_flag=True)
    return names


def resolve(args: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """(command path, command, the words after the path); raises AssertionError if unknown."""
    root_opts = _opts(main)
    words = list(args)
    rest: list[str] = []
    # root options before the command
    while words and words[0].startswith("-"):
        word = words.pop(0)
        name = word.split("=", 1)[0]
        assert name in root_opts, f"`bench {word}`: no such option of bench"
        param = root_opts[name]
        if not (isinstance(param, click.Option) and param.is_flag) and "=" not in word and words:
            words.pop(0)
    path: list[str] = []
    command: click.Command = main
    while isinstance(command, click.Group):
        assert words, f"`bench {' '.join(path)}` needs a subcommand"
        name = words.pop(0)
        ctx = click.Context(command)  # get_command loads a lazy command
        sub = command.get_command(ctx, name)
        assert sub is not None, (f"`bench {' '.join([*path, name])}`: no such command; "
                                 f"choose from {command.list_commands(ctx)}")
        path.append(name)
        command = sub
    rest.extend(words)
    return path, command, rest


def check_line(args: list[str]) -> list[str]:
    """Check one `bench ...` command; returns its command path."""
    path, command, rest = resolve(args)
    allowed = {**_opts(main), **_opts(command)}
    for word in rest:
        if word.startswith("--"):
            name = word.split("=", 1)[0]
            assert name in allowed, (f"`bench {' '.join(path)}` has no option {name}; "
                                     f"it has {sorted(n for n in allowed if n.startswith('--'))}")
    return path


def doc_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for number, line in fenced_lines(page.read_text(encoding="utf-8")):
            for args in bench_commands(line):
                found.append((f"{page.relative_to(ROOT)}:{number}", args))
    return found


DOC_COMMANDS = doc_commands()


@cache
def help_exit_code(path: tuple[str, ...]) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*path, "--help"])
    return result.exit_code, result.output


# ------------------------------------------------------------------ the README's two commands


def quick_start() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return fenced_blocks(section)


def test_readme_command_1_runs_the_demo():
    first = quick_start()[0]
    assert "pip install -e ." in first
    assert any(args[:3] == ["run", "--suite", "demo"] for args in bench_commands(first)), first


def test_readme_command_2_is_what_ci_runs():
    second = quick_start()[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_lines = [ln.strip() for ln in ci.splitlines() if ln.strip().startswith("python -m pytest")]
    # the core tests, then (after the anomalib extra) the tests that need anomalib, then a
    # subset on the declared minimum versions (.ci/constraints-min.txt)
    assert test_lines[:2] == ["python -m pytest", "python -m pytest tests/test_anomalib.py"], \
        "the test commands of .ci/run changed"
    assert len(test_lines) == 3 and test_lines[2].startswith("python -m pytest -q tests/")
    assert second.rstrip().endswith("&& python -m pytest"), second
    installs = [ln.strip() for ln in ci.splitlines() if ln.strip().startswith("pip install")]
    # the README's install, then the example plugin its tests run (tests/test_plugin_example.py)
    assert [w for w in shlex.split(installs[1]) if w != "-q"] == [
        "pip", "install", "./examples/bench-plugin-example"]
    assert len(installs) == 4
    assert [w for w in shlex.split(installs[3]) if w != "-q"] == [
        "pip", "install", "-c", ".ci/constraints-min.txt", "numpy", "pandas", "scikit-learn",
        "scipy"]
    # ... and that one comes last, in the same venv (a second venv would install torch twice)
    assert ci.index('step "minimum versions"') > ci.index('step "fashion-mnist score check"')
    # the anomalib extra, after the core tests: docs/zoo.md gives the same two commands
    extra = [w for w in shlex.split(installs[2]) if w != "-q"]
    assert extra == ["pip", "install", "-e", ".[anomalib]"]
    zoo = (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8")
    assert "pip install -e '.[anomalib]' && python -m pytest tests/test_anomalib.py" in zoo
    ci_install = [w for w in shlex.split(installs[0]) if w != "-q"]  # .ci/run is quiet
    # the efficientnet extra: the real-feature tests and the ci-real-features suite
    assert ci_install == ["pip", "install", "-e", ".[test,efficientnet]"]
    assert "pip install -e '.[test,efficientnet]'" in second
    assert second.startswith("python3 -m venv .venv && . .venv/bin/activate && ")


# ---------------------------------------------------------------- every `bench ...` in the docs


def test_the_docs_have_commands():
    assert len(DOC_COMMANDS) > 40
    pages = {where.split(":")[0] for where, _ in DOC_COMMANDS}
    assert {"README.md", "docs/running.md", "docs/tables.md"} <= pages


@pytest.mark.parametrize(("where", "args"), DOC_COMMANDS,
                         ids=[f"{w} bench {' '.join(a)[:40]}" for w, a in DOC_COMMANDS])
def test_doc_command_exists(where, args):
    try:
        path = check_line(args)
    except AssertionError as exc:
        raise AssertionError(f"{where}: {exc}") from None
    code, output = help_exit_code(tuple(path))
    assert code == 0, f"{where}: `bench {' '.join(path)} --help` exited {code}:\n{output}"


@pytest.mark.parametrize("line", [
    "bench nosuch --suite demo",
    "bench plot nosuch --suite demo",
    "bench table --suite demo --no-such-option",
    "bench --no-such-root-option run --all",
    "bench data fetch mnist --suite demo",
    "bench run --suite demo && bench table --suite demo --jobs 2",
])
def test_a_wrong_line_is_caught(line):
    [*_, args] = bench_commands(line)
    with pytest.raises(AssertionError):
        check_line(args)


def test_root_options_and_chains_are_understood():
    line = "bench --results /tmp/r --quiet run --suite ci --all && bench table --suite ci  # x"
    assert [check_line(a) for a in bench_commands(line)] == [["run"], ["table"]]
    assert check_line(["-q", "--data-root=/d", "data", "fetch", "mnist", "--archive", "f"]) == [
        "data", "fetch"]


# ------------------------------------------------------------------------------------- links


LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    heads = re.findall(r"^#+\s+(.*)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target, anchor in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        path = (page.parent / target) if target else page
        assert path.exists(), f"{page.relative_to(ROOT)}: broken link {target}"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page.relative_to(ROOT)}: no #{anchor} in {target}"


def test_readme_is_short():
    assert README.stat().st_size <= 10 * 1024, "keep the README under 10 KB: details go to docs/"


# ---------------------------------------------------------- the example method in extending.md


def test_the_example_method_in_extending_md_runs_and_detects(monkeypatch):
    """The docs' minimal detector, as written, follows the contract and beats chance."""
    import sys
    import types

    import torch

    from bench.core.metrics import image_auroc
    from bench.datasets import DATASETS
    from bench.methods.base import MethodSpec, RunContext

    text = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n# methods/(\w+)\.py\n(.*?)```", text, flags=re.S)
    assert found, "docs/extending.md has no example method module"
    module = types.ModuleType(found.group(1))
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look it up
    exec(compile(found.group(2), f"docs/extending.md:{module.__name__}", "exec"), module.__dict__)
    cls = next(v for v in vars(module).values()
               if isinstance(v, type) and v.__module__ == module.__name__ and hasattr(v, "fit")
               and v.__name__ != "Config" and not v.__name__.endswith("Config"))
    method = MethodSpec(name="example", cls=cls, defaults={}, summary="docs").build("digits", {})
    train, test = DATASETS.get("digits").load("0", None, 0, method.input_spec())
    ctx = RunContext(device=torch.device("cpu"), seed=0)
    assert method.fit(train, ctx) is method
    scores = method.score(test, ctx)
    assert scores.image.shape == (len(test),)
    assert image_auroc(test.labels, scores.image) > 0.6
