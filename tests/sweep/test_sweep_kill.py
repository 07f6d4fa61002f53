"""`aim sweep` as a person runs it: killed with SIGKILL halfway, then run again, it finishes only the missing units.

A real subprocess with a local Ray (two Ray starts: the killed sweep and its rerun)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aim_testing import HANG_S, wait_for

pytest.importorskip("ray", reason="aim sweep needs Ray: pip install 'aim-agent[sweep]' (make test installs it)")

UNITS = 6


def _command(out: Path, dataset: Path) -> list[str]:
    return [sys.executable, "-c", "import sys; from aim_agent.cli import main; sys.exit(main())", "sweep",
            "--model", "world-cnn", "--layer", "conv5",
            "--units", f"0-{UNITS - 1}", "--workers", "2", "--max-rounds", "1", "--k", "4", "--dataset", str(dataset),
            "--out", str(out), "--json"]


def _rows(db: Path) -> dict[str, tuple[str, int, str]]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db) as conn:
            found = conn.execute("SELECT unit, status, attempts, finished_at FROM units").fetchall()
    except sqlite3.OperationalError:  # the table is not created yet
        return {}
    return {unit: (status, attempts, at) for unit, status, attempts, at in found}


def _session_processes(sid: int) -> list[str]:
    """Live processes of session ``sid`` (from /proc: no `ps` needed), as 'pid name'."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session ...
            found.append(f"{stat.parent.name} {name}")
    return found


@pytest.mark.slow  # a sweep on Ray in a child process, killed, then run again
def test_kill_9_halfway_then_rerun_completes_only_the_missing_units(tmp_path: Path, tiny_world: Path) -> None:
    out = tmp_path / "sweep"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(_command(out, tiny_world), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own process group: the driver and its Ray
    deadline = time.monotonic() + HANG_S  # a hang guard: a loaded machine takes minutes to start Ray
    try:
        while len(_rows(out / "sweep.sqlite")) < 2:
            assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"no unit finished within {HANG_S} s"
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = _rows(out / "sweep.sqlite")
    assert 2 <= len(before) < UNITS, before
    assert all(status == "finished" for status, _, _ in before.values())
    # Ray's processes go with the killed sweep
    wait_for(lambda: not _session_processes(proc.pid), every=0.5)
    assert not _session_processes(proc.pid), _session_processes(proc.pid)

    again = subprocess.run(_command(out, tiny_world), env=env, capture_output=True, text=True, timeout=HANG_S)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["skipped_finished"] == len(before) and summary["ran"] == UNITS - len(before)
    assert summary["finished"] == UNITS and summary["failed"] == 0
    after = _rows(out / "sweep.sqlite")
    assert set(after) == {str(u) for u in range(UNITS)}
    for unit, row in before.items():
        assert after[unit] == row  # a unit finished before the kill was not run again
    assert all(status == "finished" and attempts == 1 for status, attempts, _ in after.values())
    assert (out / "index.html").exists()
