"""Run one callable over many unit jobs: in Ray actors (a local Ray, or a cluster), or inline.

This is the generic part of a sweep, shared by anything that runs units one by one (``aim sweep``,
and the evaluations): give it jobs (a unit name and JSON data), a top-level function
``work(payload) -> dict`` and, optionally, a ``setup(*setup_args)`` run once in each worker before
its first job (register plugins, open models). It returns one :class:`JobOutcome` per job it started.

Functions travel by name (``module:function``), never pickled: each worker imports them, so they
must live in a module the workers can import (on a cluster: installed there too). Payloads and
results are JSON-like data.

- Each worker is a Ray actor: one process that keeps what ``setup`` and the first jobs loaded
  (models, providers, imports) for every later job it runs.
- A job that raises, a worker that dies, and a job running past ``timeout_s`` (its worker is
  killed and replaced) each become a failed outcome; the other jobs go on.
- ``on_result`` sees every outcome as it arrives (write it down there: a kill loses nothing
  written); ``keep_going()`` is asked before each job starts (budgets: return False to stop
  starting jobs; running ones finish); ``on_tick`` is called about every ``tick_s``.

Ray is an optional extra (``pip install 'aim-agent[sweep]'``); the inline executor needs nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Work = Callable[[dict[str, Any]], dict[str, Any]]
Setup = Callable[..., None]
#: a function given by its import path, ``package.module:function``
FunctionRef = str
Executor = Literal["ray", "inline"]
RAY_EXTRA = "pip install 'aim-agent[sweep]' (ray==2.60.0)"
#: environment variables a worker gets from the driver (caches, runs, providers, offline hubs)
FORWARDED_ENV_PREFIXES = ("AIM_", "HF_", "TRANSFORMERS_", "GOOGLE_API_KEY", "OPENAI_", "ANTHROPIC_")


class SweepUnavailable(ImportError, LookupError):
    """Ray is not installed; the message names the extra that installs it (the CLI shows it as an error line)."""


@dataclass(frozen=True)
class UnitJob:
    """One unit to run: its name and the JSON data the work function gets."""

    unit: str
    payload: dict[str, Any]


@dataclass
class JobOutcome:
    """How one job ended: ``data`` is what the work function returned when ``ok``."""

    unit: str
    ok: bool
    data: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    timed_out: bool = False


@dataclass
class EngineReport:
    """The outcomes, the jobs never started (``keep_going`` said stop), and how the workers were used."""

    outcomes: list[JobOutcome] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    workers: int = 0
    worker_starts: int = 0
    startup_s: float = 0.0
    run_s: float = 0.0


#: the logger, and the start of the notice, of Ray's warning that it turned token authentication on by itself
TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
TOKEN_AUTH_NOTICE = "Token authentication is enabled for this Ray cluster"


def _not_the_token_auth_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(TOKEN_AUTH_NOTICE)


def import_ray() -> Any:
    """The ``ray`` module, with usage statistics off; :class:`SweepUnavailable` when it is not installed.

    Ray (2.59 and later) starts a local cluster with token authentication on (a token in ``~/.ray/auth_token``
    that every call must carry, so other processes on the machine cannot run code on it) and warns on every
    start that it did so. The protection stays on; only that one notice is dropped. (Setting
    ``RAY_AUTH_MODE=token`` also ends it, but only when set before Ray is first imported in the process, and
    it would demand a token from a cluster at ``--ray-address`` too.) Ray's other warnings, such as that
    token authentication is off, still show."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    try:
        import ray
    except ImportError as exc:
        raise SweepUnavailable(f"aim sweep runs its units on Ray, which is not installed: {RAY_EXTRA}") from exc
    logging.getLogger(TOKEN_AUTH_LOGGER).addFilter(_not_the_token_auth_notice)  # added once, however often called
    return ray


#: where every process of a local Ray listens: loopback only. Ray binds its servers (GCS, raylet, workers, the
#: runtime-env agent) to the node address; a sweep across machines joins a cluster with ``--ray-address``
LOCAL_RAY_HOST = "127.0.0.1"


@dataclass(frozen=True)
class LocalRayFiles:
    """The private files of one local Ray: a fresh token, and the folder Ray keeps its sessions in."""

    folder: Path
    """0700, removed when the cluster ends: the token, and Ray's own folder (``ray/``: Ray makes it 0777, and its
    session folders in it, so only this folder's 0700 keeps other users out)"""
    token_path: Path
    """0600: a token made for this cluster alone (never ``~/.ray/auth_token``, which Ray reuses across clusters)"""


def new_local_ray_files() -> LocalRayFiles:
    """A private folder and a fresh 256-bit token file for one local cluster."""
    folder = Path(tempfile.mkdtemp(prefix="aim-ray-"))  # 0700, ours
    token_path = folder / "auth_token"
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return LocalRayFiles(folder=folder, token_path=token_path)


@contextmanager
def _environment(changes: dict[str, str | None]) -> Iterator[None]:
    """Set (a string) or unset (None) environment variables for the block; restore them after."""
    before = {k: os.environ.get(k) for k in changes}
    try:
        for key, value in changes.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _forget_cached_token() -> None:
    """Ray's C++ token loader caches the token of the first cluster: the next one must read its own."""
    with suppress(Exception):  # private API: an older or newer Ray without it has nothing cached this way
        import importlib

        importlib.import_module("ray._raylet").AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def local_ray(ray: Any, workers: int) -> Iterator[LocalRayFiles]:
    """A local Ray for this process only: loopback, a fresh token (0600), session folders in a 0700 folder.

    ``RAY_AUTH_MODE`` is left to Ray's default for a new local cluster (token authentication), and a
    ``RAY_AUTH_TOKEN`` of the environment is set aside, so the cluster's processes read only the fresh token.
    """
    files = new_local_ray_files()
    try:
        env = {"RAY_AUTH_TOKEN_PATH": str(files.token_path), "RAY_AUTH_TOKEN": None, "RAY_AUTH_MODE": None,
               _SINGLE_MACHINE_ENV: "0"}
        with _environment(env), _single_machine_ray():
            _forget_cached_token()
            ray.init(num_cpus=workers, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                     _node_ip_address=LOCAL_RAY_HOST, _temp_dir=str(files.folder / "ray"))
            try:
                yield files
            finally:
                ray.shutdown()
    finally:
        _forget_cached_token()
        shutil.rmtree(files.folder, ignore_errors=True)


#: Ray's switch for "this node is a cluster of one": with it off, Ray takes 127.0.0.1 as the node address
#: instead of replacing it with the machine's (what it does on Windows and macOS); read by every Ray process
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def _single_machine_ray() -> Iterator[None]:
    """Within the block, this process's Ray keeps 127.0.0.1 as the node address (read when Ray was imported)."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


@contextmanager
def ray_session(workers: int, address: str | None = None) -> Iterator[Any]:
    """Ray for a sweep: the session already open in this process, else a cluster at ``address``, else a
    local Ray with ``workers`` CPUs and no dashboard (:func:`local_ray`: loopback only, a fresh token).
    Only a session opened here is shut down here."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()
        return
    with local_ray(ray, workers):
        yield ray


def forwarded_env() -> dict[str, str]:
    """What a worker needs from this process's environment (on a cluster it has no other way to get it)."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}


def function_ref(fn: Callable[..., Any] | FunctionRef) -> FunctionRef:
    """``package.module:function`` of a top-level function (checked to import back to the same one)."""
    from aim_agent.agent.runtime import import_object

    if isinstance(fn, str):
        ref = fn
    else:
        ref = f"{fn.__module__}:{fn.__qualname__}"
        if "<" in ref or fn.__module__ == "__main__":
            raise ValueError(f"{ref}: sweep workers import their functions by name; give a top-level function "
                             "of an importable module")
    import_object(ref)  # fails here, with the reason, rather than in every worker
    return ref


class UnitWorker:
    """One worker process: ``setup`` once, then jobs one at a time (a Ray actor, or inline)."""

    def __init__(self, setup: FunctionRef | None = None, setup_args: Sequence[Any] = (),
                 env: dict[str, str] | None = None) -> None:
        from aim_agent.agent.runtime import import_object

        os.environ.update(env or {})
        self._functions: dict[str, Callable[..., Any]] = {}
        if setup is not None:
            import_object(setup)(*setup_args)
        self._import = import_object

    def ready(self) -> int:
        return os.getpid()

    def run(self, work: FunctionRef, payload: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        try:
            if work not in self._functions:
                self._functions[work] = self._import(work)
            return {"ok": True, "data": self._functions[work](payload), "seconds": time.monotonic() - started}
        except Exception as exc:  # the job failed, the worker goes on
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "seconds": time.monotonic() - started}


def _outcome(unit: str, reply: dict[str, Any]) -> JobOutcome:
    return JobOutcome(unit=unit, ok=bool(reply["ok"]), data=reply.get("data"), error=reply.get("error"),
                      seconds=float(reply.get("seconds", 0.0)))


def run_jobs(
    jobs: Sequence[UnitJob],
    work: Work | FunctionRef,
    *,
    workers: int = 1,
    executor: Executor = "ray",
    address: str | None = None,
    setup: Setup | FunctionRef | None = None,
    setup_args: Sequence[Any] = (),
    timeout_s: float | None = None,
    gpus_per_worker: float = 0.0,
    on_start: Callable[[str], None] | None = None,
    on_result: Callable[[JobOutcome], None] | None = None,
    keep_going: Callable[[], bool] | None = None,
    on_tick: Callable[[], None] | None = None,
    tick_s: float = 1.0,
) -> EngineReport:
    """Run ``work`` on every job (see the module docstring); outcomes in the order they finished."""
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, got {workers}")
    if timeout_s is not None and timeout_s <= 0:
        raise ValueError(f"the per-unit timeout must be positive, got {timeout_s}")
    hooks = _Hooks(on_start, on_result, keep_going, on_tick)
    work_ref = function_ref(work)
    setup_ref = function_ref(setup) if setup is not None else None
    if executor == "inline":
        return _run_inline(jobs, work_ref, setup_ref, setup_args, hooks)
    if executor != "ray":
        raise ValueError(f"unknown executor {executor!r}; valid: ray, inline")
    with ray_session(workers, address) as ray:
        return _run_ray(ray, jobs, work_ref, workers, setup_ref, setup_args, timeout_s, hooks, tick_s,
                        gpus_per_worker)


@dataclass
class _Hooks:
    on_start: Callable[[str], None] | None
    on_result: Callable[[JobOutcome], None] | None
    keep_going: Callable[[], bool] | None
    on_tick: Callable[[], None] | None

    def start(self, unit: str) -> None:
        if self.on_start:
            self.on_start(unit)

    def result(self, report: EngineReport, outcome: JobOutcome) -> None:
        report.outcomes.append(outcome)
        if self.on_result:
            self.on_result(outcome)

    def go(self) -> bool:
        return self.keep_going() if self.keep_going else True

    def tick(self) -> None:
        if self.on_tick:
            self.on_tick()


def _run_inline(jobs: Sequence[UnitJob], work: FunctionRef, setup: FunctionRef | None, setup_args: Sequence[Any],
                hooks: _Hooks) -> EngineReport:
    """Jobs one after another in this process (no per-job timeout: the work's own budgets apply)."""
    report = EngineReport(workers=1, worker_starts=1)
    started = time.monotonic()
    worker = UnitWorker(setup, setup_args)
    report.startup_s = time.monotonic() - started
    started = time.monotonic()
    queue = deque(jobs)
    while queue and hooks.go():
        job = queue.popleft()
        hooks.start(job.unit)
        hooks.result(report, _outcome(job.unit, worker.run(work, job.payload)))
        hooks.tick()
    report.not_started = [job.unit for job in queue]
    report.run_s = time.monotonic() - started
    return report


def _run_ray(ray: Any, jobs: Sequence[UnitJob], work: FunctionRef, workers: int, setup: FunctionRef | None,
             setup_args: Sequence[Any], timeout_s: float | None, hooks: _Hooks, tick_s: float,
             gpus: float = 0.0) -> EngineReport:
    from ray.exceptions import RayActorError, RayTaskError

    report = EngineReport()
    # one CPU per worker (and a share of a GPU where asked): Ray places workers where those are free
    actor_class = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=0, max_concurrency=1)(UnitWorker)
    env = forwarded_env()
    starting: dict[Any, Any] = {}  # ready() call -> actor: a worker is given jobs once its setup is done

    def new_actor() -> None:
        report.worker_starts += 1
        actor = actor_class.remote(setup, list(setup_args), env)
        starting[actor.ready.remote()] = actor

    queue = deque(jobs)
    report.workers = min(workers, len(queue))
    for _ in range(report.workers):
        new_actor()
    started = time.monotonic()
    if starting:  # the first workers must start: a setup that fails stops the sweep before any job
        try:
            ray.get(list(starting))
        except (RayActorError, RayTaskError) as exc:
            for actor in starting.values():
                ray.kill(actor)
            raise RuntimeError(f"a sweep worker could not start: {exc}") from None
    idle = list(starting.values())
    starting.clear()
    report.startup_s = time.monotonic() - started
    started = time.monotonic()
    running: dict[Any, tuple[Any, UnitJob, float]] = {}
    try:
        while queue or running:
            while idle and queue and hooks.go():
                job = queue.popleft()
                actor = idle.pop()
                hooks.start(job.unit)
                running[actor.run.remote(work, job.payload)] = (actor, job, time.monotonic())
            if not running and (not starting or not queue or not hooks.go()):
                break
            ready, _ = ray.wait([*running, *starting], num_returns=1, timeout=tick_s)
            for ref in ready:
                if ref in starting:  # a replacement worker: usable once started
                    actor = starting.pop(ref)
                    try:
                        ray.get(ref)
                        idle.append(actor)
                    except (RayActorError, RayTaskError):
                        ray.kill(actor)
                        if not idle and not running and not starting:
                            raise RuntimeError("no sweep worker could be restarted") from None
                    continue
                actor, job, began = running.pop(ref)
                try:
                    outcome = _outcome(job.unit, ray.get(ref))
                    idle.append(actor)
                except (RayActorError, RayTaskError) as exc:  # the worker process died (killed, out of memory)
                    outcome = JobOutcome(unit=job.unit, ok=False, error=f"worker died: {str(exc)[:500]}",
                                         seconds=time.monotonic() - began)
                    new_actor()
                hooks.result(report, outcome)
            if timeout_s is not None:
                now = time.monotonic()
                for ref, (actor, job, began) in list(running.items()):
                    if now - began > timeout_s:
                        running.pop(ref)
                        ray.kill(actor)  # the only way to stop a job that does not return
                        new_actor()
                        hooks.result(report, JobOutcome(unit=job.unit, ok=False, timed_out=True,
                                                        seconds=now - began,
                                                        error=f"timed out after {timeout_s:g} s (worker replaced)"))
            hooks.tick()
    finally:
        for actor in [*idle, *starting.values(), *(a for a, _, _ in running.values())]:
            ray.kill(actor)
    report.not_started = [job.unit for job in queue]
    report.run_s = time.monotonic() - started
    return report
