"""Start-up: help and `bench list suites` import no command they do not need, nor torch."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from bench.cli import COMMANDS, main

HELP_ARGS = [["--help"], *([c.name, "--help"] for c in COMMANDS),
             ["data", "fetch", "--help"], ["data", "urls", "--help"], ["plot", "bars", "--help"],
             ["baseline", "update", "--help"]]

_PROBE = """
import json, sys
from bench.cli import main
out = []
for args in json.loads(sys.argv[1]):
    try:
        main(args, prog_name="bench")
    except SystemExit as exc:
        code = exc.code
    out.append([args, code, "torch" in sys.modules])
print("PROBE" + json.dumps(out))
"""


def _probe(arg_lists: list[list[str]]) -> list[list[object]]:
    res = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(arg_lists)],
                         capture_output=True, text=True, check=True)
    line = next(x for x in res.stdout.splitlines() if x.startswith("PROBE"))
    return json.loads(line[len("PROBE"):])


def test_help_of_every_command_and_list_suites_import_no_torch(tmp_path):
    runs = _probe([*HELP_ARGS, ["--results", str(tmp_path), "list", "suites"]])
    assert [code for _, code, _ in runs] == [0] * len(runs)
    assert [args for args, _, torch in runs if torch] == []


def test_the_help_of_commands_not_loaded_is_their_own():
    for lazy in COMMANDS:
        cmd = lazy.load()
        for limit in (45, 300):
            assert cmd.get_short_help_str(limit) == lazy.short_help(limit), lazy.name
    assert sorted(c.name for c in COMMANDS) == main.list_commands(click.Context(main))


def test_lazy_commands_run(cli, results):
    from tests.conftest import invoke

    res = invoke(cli, results, "list", "suites")
    assert res.exit_code == 0 and "demo" in res.output
    assert main.get_command(click.Context(main), "no-such-command") is None


def test_fetch_limit_defaults_are_the_library_defaults():
    from bench.cli import data
    from bench.datasets.download import DEFAULT_LIMITS

    assert DEFAULT_LIMITS.max_bytes / 2**30 == data.MAX_EXTRACT_GIB
    assert DEFAULT_LIMITS.max_members == data.MAX_MEMBERS
    assert DEFAULT_LIMITS.max_ratio == data.MAX_RATIO
