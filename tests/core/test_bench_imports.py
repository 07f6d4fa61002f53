"""``aim bench NAME`` imports only the benchmark NAME; the others are listed from their docstrings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aim_testing import HANG_S

REPO = Path(__file__).resolve().parents[2]

CODE = """
import json, sys
from aim_agent.cli import ARGV, build_parser
ARGV[:] = sys.argv[1:]
parser = build_parser(only="bench")
bench = parser._subparsers._group_actions[0].choices["bench"]
names = sorted(bench._subparsers._group_actions[0].choices)
print(json.dumps({"imported": sorted(m for m in sys.modules if m.startswith("aim_agent.benchmarks.")),
                  "listed": names}))
"""


def _run(*argv: str) -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins"),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", CODE, *argv], capture_output=True, text=True, env=env,
                         timeout=HANG_S, check=True).stdout
    data: dict[str, list[str]] = json.loads(out.strip().splitlines()[-1])
    return data


def test_aim_bench_imports_only_the_benchmark_it_runs() -> None:
    chosen = _run("bench", "sweep", "--units", "2")
    assert chosen["imported"] == ["aim_agent.benchmarks.sweep"]
    listing = _run("bench", "--help")
    assert listing["imported"] == []
    assert {"exemplars", "mcp", "sae", "sweep"} <= set(listing["listed"]) and listing["listed"] == chosen["listed"]
