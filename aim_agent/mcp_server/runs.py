"""Interpretation runs started over MCP: each runs ``run_interpret`` in its own thread.

A run id is a random token: knowing it is what lets a client read the run (``read_result``,
``aim://runs/<id>/report.html``); ids are never listed across sessions.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aim_agent.tools.base import ToolError

logger = logging.getLogger("aim_agent.mcp")

RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
Status = Literal["running", "finished", "failed"]


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


def _config_fields(config_cls: Any) -> set[str] | None:
    if hasattr(config_cls, "model_fields"):
        return set(config_cls.model_fields)
    if dataclasses.is_dataclass(config_cls):
        return {f.name for f in dataclasses.fields(config_cls)}
    return None


def _parse_backend(text: str) -> Any:
    """``provider[:model]`` as the runner's BackendSpec (kept as text when there is none)."""
    try:
        from aim_agent.agent.backends import BackendSpec
    except ImportError:
        return text
    try:
        return BackendSpec.parse(text)
    except Exception as exc:
        raise ToolError(f"start_interpret: invalid backend {text!r}: {exc}") from None


class RunManager:
    """Starts runs in threads, tracks their status, finds their files."""

    def __init__(self, runs_dir: Path, *, max_running: int = 2, defaults: dict[str, Any] | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.max_running = max_running
        #: run settings the server's configuration supplies (providers, plugins), under the caller's
        self.defaults = dict(defaults or {})
        self._runs: dict[str, RunRecord] = {}
        self._lock = threading.Lock()

    def running(self) -> int:
        with self._lock:
            return sum(r.status == "running" for r in self._runs.values())

    def start(self, options: dict[str, Any], owner: str) -> RunRecord:
        """Start ``run_interpret(RunConfig(**options, run_dir=...))`` in a thread; returns at once."""
        try:
            from aim_agent.agent.runner import RunConfig, run_interpret
        except ImportError as exc:
            raise ToolError(f"the agent runner is not available in this installation: {exc}") from None
        if self.running() >= self.max_running:
            raise ToolError(
                f"{self.max_running} runs are already running on this server; wait for one to finish "
                "(read_result) before starting another"
            )
        run_id = f"mcp-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(6)}"
        run_dir = (self.runs_dir / run_id).resolve()
        fields = _config_fields(RunConfig)
        values = {k: v for k, v in options.items() if v is not None}
        if fields is not None:
            unknown = sorted(set(values) - fields)
            if unknown:
                raise ToolError(f"the runner does not take {', '.join(unknown)}; it takes {', '.join(sorted(fields))}")
            values = {**{k: v for k, v in self.defaults.items() if k in fields and v is not None}, **values}
            if "run_id" in fields:  # the runner writes runs_dir/run_id
                values["run_id"] = run_id
                if "runs_dir" in fields:
                    values["runs_dir"] = str(self.runs_dir.resolve())
            else:
                for name in ("run_dir", "out_dir", "output_dir"):
                    if name in fields:
                        values[name] = run_dir
                        break
        if isinstance(values.get("backend"), str):
            values["backend"] = _parse_backend(values["backend"])
        try:
            config = RunConfig(**values)
        except Exception as exc:  # pydantic/dataclass validation: the caller's arguments
            raise ToolError(f"start_interpret: invalid run configuration: {exc}") from None
        record = RunRecord(id=run_id, dir=run_dir, owner=owner, config=plain(values))
        with self._lock:
            self._runs[run_id] = record
        thread = threading.Thread(
            target=self._run, args=(record, run_interpret, config), name=f"aim-run-{run_id}", daemon=True
        )
        thread.start()
        return record

    def _run(self, record: RunRecord, run_interpret: Any, config: Any) -> None:
        def progress(message: str) -> None:
            record.messages.append(str(message)[:500])
            del record.messages[:-20]

        try:
            try:
                takes_progress = "progress" in inspect.signature(run_interpret).parameters
            except (TypeError, ValueError):
                takes_progress = False
            result = run_interpret(config, progress=progress) if takes_progress else run_interpret(config)
            reported_dir = getattr(result, "run_dir", None)
            if reported_dir:
                record.dir = Path(reported_dir)
            # the run's typed record (result.json); a missing or malformed one fails the run with a clear error
            from aim_agent.agent.record import read_run_record

            record.result = read_run_record(record.dir).summary().model_dump(mode="json")
            if not (record.dir / "report.html").exists():
                try:
                    from aim_agent.report import write_report

                    write_report(record.dir)
                except ImportError:
                    pass
                except Exception:
                    logger.exception("run %s: writing the report failed", record.id)
            record.status = "finished"
        except BaseException as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            record.status = "failed"
            logger.error("run %s failed:\n%s", record.id, traceback.format_exc())
        finally:
            record.finished = time.time()

    def get(self, run_id: str) -> RunRecord:
        with self._lock:
            record = self._runs.get(run_id)
        if record is None:
            raise ToolError(f"unknown run {run_id!r}: run ids come from start_interpret on this server")
        return record

    def run_dir(self, run_id: str) -> Path:
        """The directory of a run started here, or of a finished run on disk under ``runs_dir``."""
        if not RUN_ID.match(run_id):
            raise ToolError(f"invalid run id {run_id!r}")
        with self._lock:
            record = self._runs.get(run_id)
        if record is not None:
            return record.dir
        path = (self.runs_dir / run_id).resolve()
        if not path.is_dir() or path.parent != self.runs_dir.resolve():
            raise ToolError(f"no run {run_id!r} under {self.runs_dir}")
        return path
