"""`aim` builds only the parser of the command it runs; `aim --help` lists every command cheaply."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aim_testing import HANG_S

from aim_agent.cli import COMMANDS, build_parser, summary_parser

ROOT = Path(__file__).resolve().parents[2]


def _helps(parser) -> dict[str, str]:
    sub = next(a for a in parser._actions if a.dest == "command")
    return {a.dest: a.help for a in sub._choices_actions}


def test_the_summary_lists_every_command_with_the_same_help_as_the_whole_parser() -> None:
    whole, summary = _helps(build_parser()), _helps(summary_parser())
    assert summary == whole
    assert list(COMMANDS) == list(summary)[: len(COMMANDS)]
    assert "world" in summary  # a plugin's command, from its `help` attribute


def _modules_after(argv: list[str]) -> dict:
    """Run `aim ARGV` in a fresh interpreter; the aim_agent.cli modules it imported and its exit status."""
    code = (
        "import json, sys\n"
        "from aim_agent.cli import main\n"
        "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as exc:\n    rc = exc.code\n"
        "mods = sorted(m for m in sys.modules if m.startswith('aim_agent.cli.'))\n"
        "print('@@' + json.dumps({'rc': rc, 'cli': mods, 'torch': 'torch' in sys.modules}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=HANG_S)
    line = next(x for x in out.stdout.splitlines() if x.startswith("@@"))
    return json.loads(line[2:]) | {"stdout": out.stdout, "stderr": out.stderr}


def test_help_imports_no_command_module() -> None:
    seen = _modules_after(["--help"])
    assert seen["rc"] == 0 and seen["cli"] == [] and not seen["torch"]
    for name in [*COMMANDS, "world"]:
        assert f"    {name} " in seen["stdout"]


def test_a_command_builds_only_its_own_parser() -> None:
    seen = _modules_after(["layers", "--help"])
    assert seen["rc"] == 0 and seen["cli"] == ["aim_agent.cli.layers"]
    seen = _modules_after(["world", "--help"])  # a plugin's command: no core command module
    assert seen["rc"] == 0 and seen["cli"] == [] and "render" in seen["stdout"]


def test_an_unknown_command_lists_the_valid_ones() -> None:
    seen = _modules_after(["no-such-command"])
    assert seen["rc"] == 2 and "invalid choice" in seen["stderr"] and "'interpret'" in seen["stderr"]
