"""Interpretation runs started over MCP: each runs ``run_interpret`` in its own thread.

A run belongs to the session that started it: only that session reads it (``read_result``,
``aim://runs/<id>/report.html``); to any other session it does not exist. Its owner is the
digest of that session's handle (:mod:`.handles`), so a later server process over the same
runs directory finds the run for a caller that passes the same handle, and for no one else.

Each run leaves a record beside its files when it ends, ``<runs_dir>/<id>/mcp-run.json``
(status, times, error, owner). Runs outlive the client that started them: after a stdio client disconnects, ``aim
mcp`` stays until its runs have finished (:meth:`RunManager.wait`). When the server is
stopped first, each unfinished run is recorded as ``interrupted`` with the command that
resumes it from its last checkpoint (:meth:`RunManager.interrupt_unfinished`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aim_agent.files import atomic_write
from aim_agent.models.trust import trusting
from aim_agent.tools.base import ToolError

if TYPE_CHECKING:
    from aim_agent.config import AimConfig

logger = logging.getLogger("aim_agent.mcp")

RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_ROUND = re.compile(r"^round (\d+):")
Status = Literal["running", "finished", "failed", "interrupted"]


class RunsDirError(ValueError):
    """The runs folder cannot be used; the message says which folder, why, and how to choose another."""


def default_runs_dir(config: AimConfig) -> Path:
    """Where an MCP server writes runs and session handles when not told (``--runs-dir``).

    The configured ``runs_dir`` (``AIM_RUNS_DIR``, ``aim.toml``) if one was given, else the
    user's data folder, ``$XDG_DATA_HOME/aim/runs`` (``~/.local/share/aim/runs``): never the
    working directory, which for a server a desktop client starts may be ``/``.
    """
    if config.describe_source("runs_dir") != "default":
        return Path(config.runs_dir).expanduser()
    env = {**os.environ, **config.env}
    home = env.get("HOME") or str(Path.home())
    data = env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return Path(data).expanduser() / "aim" / "runs"


def writable_runs_dir(folder: Path) -> Path:
    """``folder``, absolute, created and checked writable; else :class:`RunsDirError` (before any call)."""
    path = folder.expanduser().absolute()
    how = "choose another with --runs-dir DIR or AIM_RUNS_DIR (runs_dir in aim.toml)"
    if path == Path(path.anchor):
        raise RunsDirError(f"refusing to write runs into the root folder {path}: {how}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".aim-write-check-"):
            pass
    except OSError as exc:
        raise RunsDirError(
            f"the runs folder {path} is not writable ({exc.strerror or exc}); AIM's MCP server keeps runs and "
            f"session handles there: {how}"
        ) from None
    return path


@dataclass
class RunRecord:
    id: str
    dir: Path
    owner: str
    config: dict[str, Any]
    status: Status = "running"
    error: str | None = None
    result: Any = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    messages: list[str] = field(default_factory=list)
    #: the round of experiments the run has reached, of at most ``max_rounds``
    round: int = 0
    max_rounds: int = 0
    thread: threading.Thread | None = field(default=None, repr=False)

    def resume_command(self) -> str:
        return f"aim interpret --resume {self.id} --runs-dir {self.dir.parent}"

    def save(self) -> None:
        """Write ``mcp-run.json`` (atomically) beside the run's files."""
        data = {"run_id": self.id, "status": self.status, "error": self.error, "started": self.started,
                "finished": self.finished, "config": self.config, "owner": self.owner, "round": self.round,
                "max_rounds": self.max_rounds}
        if self.status in ("running", "interrupted"):
            data["resume"] = self.resume_command()
        try:
            atomic_write(self.dir / "mcp-run.json", json.dumps(data, indent=1).encode(), fsync=False)
        except OSError:
            logger.exception("run %s: cannot write its record", self.id)


def plain(value: Any) -> Any:
    """JSON-friendly copy of a run result (pydantic, dataclass, Path, numpy scalars)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class RunManager:
    """Starts runs in threads, tracks their status, finds their files."""

    def __init__(
        self,
        runs_dir: Path,
        *,
        max_running: int = 2,
        defaults: dict[str, Any] | None = None,
        trusted: list[str] | None = None,
    ) -> None:
        self.runs_dir = Path(runs_dir)
        self.max_running = max_running
        #: run settings the server's configuration supplies (providers, plugins), under the caller's
        self.defaults = dict(defaults or {})
        #: model specs the operator trusts: the trust scope each run's thread opens
        self.trusted = list(trusted or [])
        self._runs: dict[str, RunRecord] = {}
        self._lock = threading.RLock()  # re-entrant: a signal handler may record runs while it is held

    def running(self) -> int:
        with self._lock:
            return sum(r.status == "running" for r in self._runs.values())

    def start(self, options: dict[str, Any], owner: str) -> RunRecord:
        """Start ``run_interpret(RunConfig(**options, run_dir=...))`` in a thread; returns at once."""
        from aim_agent.agent.backends import BackendSpec
        from aim_agent.agent.config import RunConfig
        from aim_agent.agent.runner import run_interpret
        if self.running() >= self.max_running:
            raise ToolError(
                f"{self.max_running} runs are already running on this server; wait for one to finish "
                "(read_result) before starting another"
            )
        run_id = f"mcp-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(6)}"
        run_dir = (self.runs_dir / run_id).resolve()
        fields = set(RunConfig.model_fields)
        values = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ToolError(f"the runner does not take {', '.join(unknown)}; it takes {', '.join(sorted(fields))}")
        values = {**{k: v for k, v in self.defaults.items() if k in fields and v is not None}, **values}
        values.update(run_id=run_id, runs_dir=str(self.runs_dir.resolve()))  # the runner writes runs_dir/run_id
        try:
            if isinstance(values.get("backend"), str):
                values["backend"] = BackendSpec.parse(values["backend"])
            config = RunConfig(**values)
        except (ValueError, TypeError) as exc:  # the caller's arguments
            raise ToolError(f"start_interpret: invalid run configuration: {exc}") from None
        record = RunRecord(id=run_id, dir=run_dir, owner=owner, config=plain(values), max_rounds=config.max_rounds)
        with self._lock:
            self._runs[run_id] = record
        # a daemon thread: the server decides at exit whether to wait for it (wait) or record it (interrupt)
        record.thread = threading.Thread(
            target=self._run, args=(record, run_interpret, config), name=f"aim-run-{run_id}", daemon=True
        )
        record.thread.start()
        return record

    def _run(self, record: RunRecord, run_interpret: Any, config: Any) -> None:
        def progress(message: str) -> None:
            record.messages.append(str(message)[:500])
            del record.messages[:-20]
            found = _ROUND.match(str(message))  # the runner says "round K: ..." as each round ends
            if found:
                record.round = max(record.round, int(found.group(1)))

        try:
            with trusting(*self.trusted):  # this thread's scope: only what the operator configured
                result = run_interpret(config, progress=progress)
            reported_dir = getattr(result, "run_dir", None)
            if reported_dir:
                record.dir = Path(reported_dir)
            # the run's typed record (result.json); a missing or malformed one fails the run with a clear error
            from aim_agent.agent.record import read_run_record

            # never a synthetic unit's answer to a client: it may be the scientist being measured
            record.result = read_run_record(record.dir).summary().model_dump(mode="json", exclude={"ground_truth"})
            if not (record.dir / "report.html").exists():
                try:
                    from aim_agent.report import write_report

                    write_report(record.dir)
                except ImportError:
                    pass
                except Exception:
                    logger.exception("run %s: writing the report failed", record.id)
            record.status = "finished"
            record.round = int(record.result.get("rounds_run") or record.round)
        except BaseException as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            record.status = "failed"
            logger.error("run %s failed:\n%s", record.id, traceback.format_exc())
        finally:
            record.finished = time.time()
            if record.status != "interrupted":
                record.save()

    def get(self, run_id: str, owner: str) -> RunRecord:
        """The run ``run_id`` if ``owner`` (a session key) started it; to anyone else it does not exist."""
        with self._lock:
            record = self._runs.get(run_id) if RUN_ID.match(run_id) else None
        if record is None and RUN_ID.match(run_id) and run_id not in (".", ".."):
            record = self._from_disk(self.runs_dir / run_id)
        if record is None or record.owner != owner:
            raise ToolError(
                f"unknown run {run_id[:80]!r}: run ids come from start_interpret, and only the session that started "
                "a run reads it (on another connection: pass that session's handle as 'session')"
            )
        return record

    def owned(self, owner: str, limit: int = 20) -> list[RunRecord]:
        """The newest runs of ``owner``: this process's and, from the runs directory, earlier ones'."""
        with self._lock:
            found = {r.id: r for r in self._runs.values() if r.owner == owner}
        folders = sorted(self.runs_dir.glob("mcp-*"), reverse=True)[:200] if self.runs_dir.is_dir() else []
        for folder in folders:  # run ids begin with their start time: newest first
            if folder.name not in found:
                record = self._from_disk(folder)
                if record is not None and record.owner == owner:
                    found[record.id] = record
        return sorted(found.values(), key=lambda r: r.started, reverse=True)[:limit]

    def _from_disk(self, folder: Path) -> RunRecord | None:
        """A run an earlier process recorded (``mcp-run.json``), with its result once it finished."""
        try:
            data = json.loads((folder / "mcp-run.json").read_text())
            record = RunRecord(
                id=str(data["run_id"]), dir=folder, owner=str(data.get("owner") or ""), config=data.get("config") or {},
                status=data["status"], error=data.get("error"), started=float(data["started"]),
                finished=data.get("finished"), round=int(data.get("round") or 0),
                max_rounds=int(data.get("max_rounds") or 0),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if record.id != folder.name or record.status not in ("finished", "failed", "interrupted"):
            return None
        if record.status == "finished":
            from aim_agent.agent.record import read_run_record

            try:
                record.result = read_run_record(folder).summary().model_dump(mode="json", exclude={"ground_truth"})
            except Exception:  # a damaged result: the status says finished, the result is missing
                logger.warning("run %s: cannot read its result", record.id, exc_info=True)
        return record

    def run_dir(self, run_id: str, owner: str) -> Path:
        """The directory of a run ``owner`` started (a finished run's report and result live there)."""
        return self.get(run_id, owner).dir

    def is_running(self, run_id: str) -> bool:
        with self._lock:
            record = self._runs.get(run_id)
        return record is not None and record.status == "running"

    def unfinished(self) -> list[RunRecord]:
        with self._lock:
            return [r for r in self._runs.values() if r.status == "running"]

    def wait(self, timeout: float | None = None) -> list[RunRecord]:
        """Wait for running runs to end (at most ``timeout`` seconds); returns those still running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for record in self.unfinished():
            if record.thread is None:
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            while record.thread.is_alive() and (left is None or left > 0):  # short joins: signals get through
                record.thread.join(0.5 if left is None else min(0.5, left))
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.unfinished()

    def interrupt_unfinished(self) -> list[RunRecord]:
        """Record every run still going as ``interrupted`` (the server is stopping); returns them.

        Their threads die with the process; each run's checkpoint lets ``aim interpret
        --resume`` continue it (the command is in its ``mcp-run.json``).
        """
        stopped = self.unfinished()
        for record in stopped:
            record.status = "interrupted"
            record.error = f"the server stopped before the run finished; resume it with: {record.resume_command()}"
            record.finished = time.time()
            record.save()
        return stopped
