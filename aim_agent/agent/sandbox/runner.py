"""The parent side of the sandbox: start the child, serve its calls, enforce the limits."""

from __future__ import annotations

import ast
import contextlib
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from typing import Any

from aim_agent.agent.sandbox import wire
from aim_agent.agent.sandbox.spec import (
    SECRET_ENV,
    CallRecord,
    FailureKind,
    ObjectHandler,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    signature_of,
)
from aim_agent.images import current_store, fast_path, image_id, pixel_budget, raw_image_id

FILENAME = "<experiment>"
_HERE = os.path.dirname(os.path.abspath(__file__))
_BOOTSTRAP = """\
import importlib.util, sys
def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
_here = sys.argv[1]
_load("_aim_sandbox_wire", _here + "/wire.py")
_load("_aim_sandbox_landlock", _here + "/landlock.py")
_load("_aim_sandbox_seccomp", _here + "/seccomp.py")
_load("_aim_sandbox_isolation", _here + "/isolation.py")
_load("_aim_sandbox_child", _here + "/child.py").main(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
"""
#: environment variables copied from the parent when set (an allow-list, never a deny-list)
_PASS_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONHASHSEED")
#: thread-pool sizes: copied when set, else 1 (the child does light work and has a memory cap)
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_CHUNK = 1 << 20
_SETTLE_S = 1.0  # how long a finished child may take to exit and flush
_WORKDIR_PREFIX = "aim-sandbox-"
_MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
#: without a tmpfs quota in the child, how often the agent measures the work directory, and the most
#: entries it walks (more counts as over the quota: a million empty files cost inodes and the walk's time)
_QUOTA_EVERY_S = 0.2
_QUOTA_MAX_ENTRIES = 20_000


def run_code(
    code: str,
    *,
    entry: str = "run_experiment",
    handlers: Mapping[str, ObjectHandler],
    limits: SandboxLimits = SandboxLimits(),
) -> SandboxResult:
    """Run model-written ``code`` in a separate, limited process and return what happened.

    The code must define ``def <entry>(...)``; it is called with one proxy per handler, in
    the order of ``handlers`` (``{"system": ..., "tools": ...}`` gives
    ``run_experiment(system, tools)``). Every method call on a proxy is run here, in the
    parent, by the handler; its return value (or its error, raised as an exception at the
    model's line) goes back to the child. The parent is never harmed by the code: any
    failure of the child is reported in the result, never raised. Errors of the caller
    (a handler attribute that cannot be sent, a bad entry name) raise ``ValueError`` /
    ``TypeError``; a machine on which no isolation layer works raises
    :class:`SandboxUnavailable` (unless ``limits.allow_unsafe``).
    """
    if not entry.isidentifier():
        raise ValueError(f"entry must be a Python identifier, not {entry!r}")
    for name in handlers:
        if not name.isidentifier():
            raise ValueError(f"handler names must be Python identifiers, not {name!r}")
    started = time.monotonic()
    problem = check_code(code, entry, max_chars=limits.max_code_chars)
    if problem is not None:
        problem.wall_time_s = time.monotonic() - started
        return problem
    objects = [handler.spec(name, limits.max_message_bytes) for name, handler in handlers.items()]
    return _Run(code, entry, dict(handlers), objects, limits).run()


def hidden_packages() -> list[str]:
    """The top-level names of AIM's own package and of every loaded plugin's package."""
    from aim_agent.plugins import plugin_manager

    names = {"aim_agent"}
    for _name, plugin in plugin_manager().pm.list_name_plugin():
        module = getattr(plugin, "__name__", "") or getattr(type(plugin), "__module__", "")
        if module:
            names.add(module.split(".")[0])
    return sorted(names)


def default_hidden_paths() -> list[str]:
    """The directories of AIM's own packages and of every loaded plugin's top-level package.

    Model code must not import AIM's internals or read a plugin's data (a synthetic neuron's
    definition is its ground truth). The sandbox's own modules are loaded before these are hidden.
    The child also hides the copies its own ``sys.path`` finds (:func:`hidden_packages`): ``python
    -I`` ignores ``PYTHONPATH``, so it may find another copy (an editable install) than this process.
    """
    import importlib.util

    found: list[str] = []
    for name in hidden_packages():
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(name)
            for location in (spec.submodule_search_locations or []) if spec is not None else []:
                if os.path.isdir(location):
                    found.append(os.path.realpath(location))
    return sorted(set(found))


def check_code(code: str, entry: str = "run_experiment", *, max_chars: int = 1_000_000) -> SandboxResult | None:
    """Compile (never run) ``code`` here: a failed result for a syntax error or a missing entry, else None."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a string, not {type(code).__name__}")
    if len(code) > max_chars:
        return SandboxResult(
            ok=False,
            kind="syntax_error",
            error=f"the code is {len(code)} characters long, over the limit of {max_chars}",
        )
    try:
        tree = ast.parse(code, filename=FILENAME)
        compile(tree, FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return SandboxResult(
            ok=False,
            kind="syntax_error",
            error=f"{type(exc).__name__}: {exc.msg}{where}",
            traceback="".join(traceback.format_exception_only(type(exc), exc)),
        )
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return SandboxResult(
            ok=False, kind="syntax_error", error=f"the code cannot be compiled: {type(exc).__name__}: {exc}"
        )
    if not _binds(tree, entry):
        functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        found = f"it defines {', '.join(functions)}" if functions else "it defines no function"
        return SandboxResult(
            ok=False,
            kind="missing_entry",
            error=f"the code must define a top-level function `def {entry}(...)` that the sandbox calls; {found}",
        )
    return None


def _binds(tree: ast.AST, name: str) -> bool:
    """Whether ``name`` is bound anywhere in the code (def, class, assignment or import)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, ast.alias) and (node.asname or node.name.split(".")[0]) == name:
            return True
    return False


def child_environment(workdir: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment, built from an allow-list; nothing that looks like a secret."""
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    for key in _THREAD_ENV:
        env[key] = os.environ.get(key, "1")
    env.update(extra or {})
    env.update(HOME=workdir, TMPDIR=workdir, PYTHONNOUSERSITE="1", MPLCONFIGDIR=workdir)
    return {k: v for k, v in env.items() if not SECRET_ENV.search(k)}


class _CappedText:
    """Keeps the first and last bytes of a stream up to a character budget, and counts the rest."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self._head_cap = max_chars * 2 // 3
        self._tail_cap = max_chars - self._head_cap

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self._tail_cap:
                del self.tail[: len(self.tail) - self._tail_cap]

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        kept = len(self.head) + len(self.tail)
        if self.total <= kept:
            return head + self.tail.decode("utf-8", errors="replace")
        cut = self.total - kept
        note = (
            f"\n[... {cut} bytes of output cut: {self.total} bytes were printed, "
            f"at most {self.max_chars} are kept ...]\n"
        )
        return head + note + self.tail.decode("utf-8", errors="replace")


class _ProtocolViolation(Exception):
    pass


class _Run:
    """One run: a child process, its channel, its deadline."""

    def __init__(
        self,
        code: str,
        entry: str,
        handlers: dict[str, ObjectHandler],
        objects: list[dict[str, Any]],
        limits: SandboxLimits,
    ) -> None:
        self.code, self.entry, self.handlers, self.objects, self.limits = code, entry, handlers, objects, limits
        self.stdout = _CappedText(limits.max_stdout_chars)
        self.stderr = _CappedText(8000)
        self.calls: list[CallRecord] = []
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.done: dict[str, Any] | None = None
        self.isolation = "separate process, rlimits"
        self.ready = False
        self.refused: str | None = None
        self.timed_out = False
        self.violation: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.selector: selectors.BaseSelector | None = None
        self.killed_by_us = False
        self.streams: dict[int, _CappedText] = {}
        self.workdir = ""
        self.watch_quota = False  # no tmpfs quota in the child (no mount namespace): the parent measures
        self.next_quota_check = 0.0
        self.over_quota: str | None = None

    # ---------------------------------------------------------------- lifecycle

    def run(self) -> SandboxResult:
        started = time.monotonic()
        self.deadline = started + self.limits.wall_time_s
        start_frame = wire.dumps(self._start_message(), self.limits.max_message_bytes)
        clean_stale_workdirs()
        workdir = self.workdir = tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}{os.getpid()}-")
        fds: list[int] = []
        try:
            to_child_r, to_child_w = os.pipe()
            from_child_r, from_child_w = os.pipe()
            fds += [to_child_r, to_child_w, from_child_r, from_child_w]
            try:
                argv = [sys.executable, "-I", "-c", _BOOTSTRAP, _HERE, str(to_child_r), str(from_child_w)]
                self.proc = subprocess.Popen(
                    [*argv, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=workdir,
                    env=child_environment(workdir, self.limits.extra_env),
                    pass_fds=(to_child_r, from_child_w),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                return self._result(started, kind="killed", error=f"the sandbox process could not start: {exc}")
            for fd in (to_child_r, from_child_w):
                os.close(fd)
                fds.remove(fd)
            self.to_child, self.from_child = to_child_w, from_child_r
            self.outbox += start_frame
            self._loop()
            if not self.timed_out and self.violation is None and self.over_quota is None:
                self._settle(time.monotonic() + _SETTLE_S)  # let it exit and flush its output
            if self.watch_quota and self.over_quota is None:
                self._check_quota(force=True)
        finally:
            self._kill()
            if self.selector is not None:
                self._drain(time.monotonic() + 0.2)  # what was printed before the kill
                self.selector.close()
            self._close_streams()
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            _remove_tree(workdir)
        return self._outcome(started)

    def _start_message(self) -> dict[str, Any]:
        lim = self.limits
        return {
            "type": "start",
            "images": "raw" if fast_path() else "png",
            "code": self.code,
            "entry": self.entry,
            "objects": self.objects,
            "limits": {
                "memory_bytes": lim.memory_bytes,
                "cpu_time_s": lim.cpu_time_s,
                "file_size_bytes": lim.file_size_bytes,
                "workdir_bytes": lim.workdir_bytes,
                "open_files": lim.open_files,
                "max_processes": lim.max_processes,
                "max_message_bytes": lim.max_message_bytes,
                "landlock": lim.landlock,
                "require_landlock": lim.require_landlock,
                "namespaces": lim.namespaces,
                "seccomp": lim.seccomp,
                "allow_unsafe": lim.allow_unsafe,
                "read_paths": list(lim.read_paths),
                "hidden_paths": list(default_hidden_paths() if lim.hidden_paths is None else lim.hidden_paths),
                "hidden_packages": hidden_packages() if lim.hidden_paths is None else [],
            },
        }

    def _exited(self) -> bool:
        """Whether the child has ended, without reaping it (so its group id stays its own)."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return True
        if not hasattr(os, "waitid"):  # macOS: poll() reaps, a tiny window for id reuse before killpg
            return self.proc.poll() is not None
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _settle(self, until: float) -> None:
        """Collect stdout/stderr until the child has exited and closed them, or ``until``."""
        while time.monotonic() < until and (self.streams or not self._exited()):
            if self.streams:
                self._drain(min(until, time.monotonic() + 0.05))
            else:  # the streams close a moment before the process can be waited for
                time.sleep(0.001)

    def _kill(self) -> None:
        """Kill the child's process group, then reap the child."""
        proc = self.proc
        if proc is None:
            return
        self.killed_by_us = not self._exited()
        # The group is killed before the child is reaped, so its id cannot have been reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # stuck in the kernel: it dies on its own
            proc.wait(timeout=10)

    def _close_streams(self) -> None:
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    # ---------------------------------------------------------------- I/O loop

    def _loop(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self.proc.stderr is not None
        sel = selectors.DefaultSelector()
        streams = {self.proc.stdout.fileno(): self.stdout, self.proc.stderr.fileno(): self.stderr}
        for fd in (self.from_child, self.to_child, *streams):
            os.set_blocking(fd, False)
        sel.register(self.from_child, selectors.EVENT_READ, "proto")
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ, "stream")
        self.selector, self.streams = sel, streams
        writing = False
        try:
            while self.done is None:
                if bool(self.outbox) != writing:
                    writing = bool(self.outbox)
                    if writing:
                        sel.register(self.to_child, selectors.EVENT_WRITE, "write")
                    else:
                        sel.unregister(self.to_child)
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    self.timed_out = True
                    return
                if self.watch_quota and self._check_quota():
                    return
                events = sel.select(timeout=min(remaining, 0.25))
                if not events and self._exited():  # it died, but a process it forked holds the channel
                    return
                for key, _ in events:
                    if key.data == "stream":
                        self._read_stream(key.fd)
                    elif key.data == "write":
                        if not self._write():
                            return
                    elif not self._read_protocol():
                        return
        except _ProtocolViolation as exc:
            self.violation = str(exc)
        finally:
            if writing:
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(self.to_child)

    def _drain(self, until: float) -> None:
        """Collect what is left on stdout/stderr until the child closes them or ``until``."""
        sel = self.selector
        assert sel is not None
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(self.from_child)  # only the output streams from here on
        while self.streams and time.monotonic() < until:
            for key, _ in sel.select(timeout=max(0.0, until - time.monotonic())):
                if key.data == "stream":
                    self._read_stream(key.fd)

    def _read_stream(self, fd: int) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.streams[fd].add(data)
        else:
            assert self.selector is not None
            self.selector.unregister(fd)
            del self.streams[fd]

    def _write(self) -> bool:
        try:
            written = os.write(self.to_child, self.outbox[:_CHUNK])
        except BlockingIOError:
            return True
        except OSError:  # the child is gone
            return False
        del self.outbox[:written]
        return True

    def _read_protocol(self) -> bool:
        """Read what the child sent and handle complete frames; False when the channel closed."""
        try:
            data = os.read(self.from_child, _CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            return False
        self.inbox += data
        while self.done is None and len(self.inbox) >= wire.HEADER.size:
            try:
                length = wire.frame_length(bytes(self.inbox[: wire.HEADER.size]), self.limits.max_message_bytes)
            except wire.WireError as exc:
                raise _ProtocolViolation(str(exc)) from None
            if len(self.inbox) < wire.HEADER.size + length:
                break
            payload = bytes(self.inbox[wire.HEADER.size : wire.HEADER.size + length])
            del self.inbox[: wire.HEADER.size + length]
            try:
                message = wire.loads(payload)
            except wire.WireError as exc:
                raise _ProtocolViolation(str(exc)) from None
            self._handle(message)
        return True

    # ---------------------------------------------------------------- messages

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("ready", "refused") and self.ready:
            raise _ProtocolViolation(f"a second {kind!r} message")
        if kind == "ready":
            self.ready = True
            self.isolation = describe_isolation(message, self.limits)
            state = message.get("isolation")
            fs = state.get("fs", []) if isinstance(state, dict) else []
            quota_in_child = any(str(note).startswith("work directory quota") for note in fs)
            self.watch_quota = self.limits.workdir_bytes is not None and not quota_in_child
        elif kind == "refused":  # sent before any model code runs, so it cannot be forged by it
            self.refused = str(message.get("error", "no reason given"))[:2000]
            self.done = message
        elif kind == "done":  # before "ready" only when the child could not set itself up
            self.done = message
        elif kind == "call" and self.ready:
            if self.outbox:  # the child waits for each reply before its next call; it cannot pile them up
                raise _ProtocolViolation("a call arrived before the reply to the previous one was read")
            self.outbox += self._serve(message)
        else:
            raise _ProtocolViolation(f"unexpected message type {kind!r}")

    def _serve(self, message: dict[str, Any]) -> bytes:
        """Run one call of the child; the reply frame (the result, or the error the child will raise)."""
        call_id, obj, method = message.get("id"), message.get("object"), message.get("method")
        if not isinstance(call_id, int) or not isinstance(obj, str) or not isinstance(method, str):
            raise _ProtocolViolation("a call needs an integer id and string object and method names")
        obj, method = obj[:200], method[:200]

        def failed(error_type: str, text: str) -> bytes:
            reply = {"type": "result", "id": call_id, "ok": False, "error_type": error_type, "error": text[:20000]}
            return wire.dumps(reply, self.limits.max_message_bytes)

        def refuse(error_type: str, text: str) -> bytes:
            self.calls.append(CallRecord(object=obj, method=method, duration_s=0.0, ok=False, error=text))
            return failed(error_type, text)

        if len(self.calls) >= self.limits.max_calls:
            return refuse(
                "RuntimeError", f"the code made more than {self.limits.max_calls} calls; make fewer, larger calls"
            )
        root, *path = obj.split(".")
        handler = self.handlers[root].lookup(path) if root in self.handlers else None
        function = handler.methods.get(method) if handler is not None else None
        if function is None:
            allowed = ", ".join(sorted(handler.methods)) if handler is not None else "none"
            return refuse("AttributeError", f"{obj}.{method} is not a method the sandbox may call; allowed: {allowed}")
        try:
            args = wire.decode(
                message.get("args", []),
                tensors="torch",
                on_image=_adopt_image,
                on_raw=_known_raw_image,
                max_image_pixels=self.limits.max_image_pixels,
                max_items=self.limits.max_items,
            )
            kwargs = wire.decode(
                message.get("kwargs", {}),
                tensors="torch",
                on_image=_adopt_image,
                on_raw=_known_raw_image,
                max_image_pixels=self.limits.max_image_pixels,
                max_items=self.limits.max_items,
            )
            if (
                not isinstance(args, list)
                or not isinstance(kwargs, dict)
                or not all(isinstance(k, str) for k in kwargs)
            ):
                raise wire.WireError("arguments must be a list and keyword arguments a dict with string keys")
        except wire.WireError as exc:
            return refuse("ValueError", f"arguments of {obj}.{method} could not be read: {exc}")
        sig = signature_of(function)
        if sig is not None:
            try:
                sig.bind(*args, **kwargs)
            except TypeError as exc:
                return refuse("TypeError", f"{obj}.{method}{sig.replace(return_annotation=sig.empty)}: {exc}")
        began = time.monotonic()
        error_type: str | None = None
        error: str | None = None
        frame = b""
        try:
            with pixel_budget():  # images the handler decodes from bytes: one budget for the whole call
                value = function(*args, **kwargs)
        except Exception as exc:
            error_type = type(exc).__name__
            error = f"{obj}.{method}() raised {error_type}: {exc}"
        else:
            try:
                encoded = wire.encode(value, limit=self.limits.max_message_bytes,
                                      images="raw" if fast_path() else "png")
                frame = wire.dumps(
                    {"type": "result", "id": call_id, "ok": True, "value": encoded}, self.limits.max_message_bytes
                )
            except Exception as exc:  # TypeError (unsendable), MessageTooLarge, a property that raised
                error_type = "TypeError" if isinstance(exc, TypeError) else "ValueError"
                error = f"the result of {obj}.{method}() cannot be sent to the sandbox: {exc}"
        duration = time.monotonic() - began
        if not self.limits.count_handler_time:
            self.deadline += duration
        self.calls.append(
            CallRecord(object=obj, method=method, duration_s=round(duration, 4), ok=error is None, error=error)
        )
        return frame if error is None else failed(error_type or "RuntimeError", error)

    def _check_quota(self, force: bool = False) -> bool:
        """Measure the work directory (at most every :data:`_QUOTA_EVERY_S`); whether it is over the quota."""
        now = time.monotonic()
        if not force and now < self.next_quota_check:
            return False
        self.next_quota_check = now + _QUOTA_EVERY_S
        limit = self.limits.workdir_bytes
        assert limit is not None
        used = _disk_use(self.workdir, _QUOTA_MAX_ENTRIES)
        if used is None or used > limit:
            what = f"more than {_QUOTA_MAX_ENTRIES} files" if used is None else f"{used / 2**20:.0f} MiB"
            self.over_quota = (
                f"the code wrote {what} into its work directory, over the quota of {limit / 2**20:.0f} MiB, and was "
                "stopped (this machine has no mount namespace, so the agent measures the work directory)"
            )
            return True
        return False

    # ---------------------------------------------------------------- outcome

    def _result(self, started: float, **fields: Any) -> SandboxResult:
        proc = self.proc
        return SandboxResult(
            ok=fields.pop("ok", False),
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            wall_time_s=round(time.monotonic() - started, 4),
            calls=self.calls,
            exit_code=proc.returncode if proc is not None else None,
            isolation=self.isolation,
            **fields,
        )

    def _outcome(self, started: float) -> SandboxResult:
        if self.refused is not None:
            raise SandboxUnavailable(
                f"the sandbox refused to run model-written code: {self.refused}. To run it anyway, accept the "
                "risk explicitly: SandboxLimits(allow_unsafe=True), `aim interpret --unsafe-sandbox`"
            )
        if self.violation is not None:
            return self._result(
                started, kind="protocol_error", error=f"the sandbox broke the protocol: {self.violation}"
            )
        if self.over_quota is not None:
            return self._result(started, kind="killed", error=self.over_quota)
        done = self.done
        if done is not None:
            if done.get("ok") is True:
                try:
                    value = wire.decode(
                        done.get("value"),
                        tensors="torch",
                        on_image=_adopt_image,
                        on_raw=_known_raw_image,
                        max_image_pixels=self.limits.max_image_pixels,
                        max_items=self.limits.max_items,
                    )
                except wire.TooManyValues as exc:
                    return self._result(started, kind="runtime_error", error=f"the return value was not read: {exc}")
                except wire.WireError as exc:
                    return self._result(
                        started, kind="protocol_error", error=f"the return value could not be read: {exc}"
                    )
                return self._result(started, ok=True, return_value=value)
            kind = done.get("kind")
            if kind not in ("syntax_error", "missing_entry", "runtime_error", "memory", "killed", "protocol_error"):
                return self._result(started, kind="protocol_error", error=f"unknown failure kind {kind!r}")
            text = done.get("traceback")
            return self._result(
                started,
                kind=kind,
                error=str(done.get("error", ""))[:4000],
                traceback=str(text)[-20000:] if text else None,
            )
        if self.timed_out:
            return self._result(
                started,
                kind="timeout",
                error=f"the code ran past the time limit of {self.limits.wall_time_s:g} s and was stopped "
                "(an endless loop, or too much work for one experiment)",
            )
        return self._died(started)

    def _died(self, started: float) -> SandboxResult:
        """The child ended (or closed its channel) without a result: say why as well as we can."""
        rc = self.proc.returncode if self.proc is not None else None
        err = self.stderr.text()
        # faulthandler's dump, without the frames of the sandbox machinery
        lines = "\n".join(line for line in err[-3000:].splitlines() if _HERE not in line and '"<string>"' not in line)
        tail = lines or None
        kind: FailureKind = "killed"
        if self.killed_by_us:
            why = "the sandbox process closed its channel without a result and was stopped"
        elif rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            if -rc == getattr(signal, "SIGXCPU", -1):
                return self._result(
                    started,
                    kind="timeout",
                    error=f"the code used more than its CPU-time limit of {self.limits.cpu_time_s} s and was stopped",
                    traceback=tail,
                )
            why = f"the sandbox process was killed by {name}"
            if -rc == signal.SIGKILL:
                why += " (from outside the sandbox: often the system's out-of-memory killer)"
        else:
            why = f"the sandbox process exited (status {rc}) before returning a result (os._exit, or exit in a thread?)"
        if any(sign in err for sign in _MEMORY_SIGNS):
            kind = "memory"
            why += "; it ran out of memory"
        return self._result(started, kind=kind, error=why, traceback=tail)


def describe_isolation(ready: Mapping[str, Any], limits: SandboxLimits) -> str:
    """One line for ``SandboxResult.isolation``: every layer that was in force, and what was not."""
    found = ready.get("isolation")
    state: dict[str, Any] = found if isinstance(found, dict) else {}
    parts = ["separate process"]
    missing: list[str] = [str(p)[:200] for p in state.get("problems", [])][:8]
    names = [str(n) for n in state.get("namespaces", [])]
    if names:
        fs = ", ".join(str(f) for f in state.get("fs", []))
        parts.append(f"namespaces {', '.join(names)}" + (f" ({fs})" if fs else ""))
    uid, caps = state.get("uid"), state.get("capabilities")
    if uid is not None:
        parts.append(f"uid {uid}, " + ("no capabilities" if not caps else f"capabilities {caps}"))
    if state.get("dumpable") is False:
        parts.append("not dumpable")
    if state.get("pdeathsig"):
        parts.append("dies with the agent")
    seccomp = ready.get("seccomp")
    if seccomp == "in force":
        refused = "sockets, exec, keyring, ptrace, mounts, memfd" + ("" if ready.get("fork") else ", fork")
        if ready.get("metadata") == "seccomp":
            refused += ", chmod, utime"
        parts.append(f"seccomp (refuses {refused})")
    else:
        missing.append(f"seccomp: {str(seccomp)[:200]}")
    failed = ready.get("rlimits_failed") or []
    parts.append(f"rlimits (not applied: {', '.join(map(str, failed))[:200]})" if failed else "rlimits")
    memory = _gib(limits.memory_bytes)
    if limits.memory_bytes is None:
        parts.append("no memory limit")
    elif not ready.get("fork") and seccomp == "in force":
        parts.append(f"memory per run: {memory} (one process: fork refused)")
    elif limits.max_processes is not None and uid not in (None, 0) and "RLIMIT_NPROC" not in failed:
        parts.append(f"memory per run: at most {limits.max_processes} x {memory} (RLIMIT_NPROC)")
    else:
        parts.append(f"memory per process: {memory}")
    abi = ready.get("landlock_abi")
    if isinstance(abi, int) and abi > 0:
        parts.append(f"Landlock ABI {abi} (files, TCP, signals)")
    else:
        missing.append(f"Landlock: {str(ready.get('landlock'))[:200]}")
    text = f"{_mode(state, seccomp == 'in force')}; " + ", ".join(parts)
    return text + (f"; not in force: {'; '.join(missing)}" if missing else "")


def _mode(state: Mapping[str, Any], seccomp: bool) -> str:
    """Which isolation mode a run got (docs/security.md, "Isolation modes"); the reasons follow in the line."""
    isolated = bool(state.get("pid_namespace"))
    if state.get("uid") == 0:
        return "mode unsafe: uid 0 kept"
    if isolated and seccomp:
        return "mode full"
    if seccomp:
        return "mode degraded: no private process tree, network or mounts"
    if isolated:
        return "mode degraded: no system-call filter"
    return "mode unsafe: no isolation layer"


def _gib(size: int | None) -> str:
    return "unlimited" if size is None else f"{size / 2**30:g} GiB"


def clean_stale_workdirs() -> list[str]:
    """Remove the work directories of sandbox runs whose agent process is gone (killed with SIGKILL).

    Work directories are named ``aim-sandbox-<agent pid>-*``; the ones of a live process, of
    another user's process, or in the old format are left alone. Returns the removed paths.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        return removed
    mine = os.getpid()
    for entry in entries:
        if not entry.name.startswith(_WORKDIR_PREFIX):
            continue
        pid_text, dash, _ = entry.name[len(_WORKDIR_PREFIX) :].partition("-")
        if not dash or not pid_text.isdigit() or int(pid_text) == mine:  # an old name has no pid
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # alive (or another user's)
        except ProcessLookupError:
            pass
        except OSError:
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                _remove_tree(entry.path)
                removed.append(entry.path)
    return removed


def _disk_use(root: str, max_entries: int) -> int | None:
    """Bytes allocated under ``root`` (symlinks not followed), or None past ``max_entries`` entries."""
    total, seen = 0, 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > max_entries:
                return None
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                total += info.st_blocks * 512 if hasattr(info, "st_blocks") else info.st_size
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


def _known_raw_image(mode: str, size: tuple[int, int], raw: bytes) -> Any:
    """The stored image whose pixels are ``raw`` (RGB), found by the hash of the bytes that came over the wire
    without building an image; None when the store does not hold it (then it is decoded and adopted)."""
    if mode != "RGB":
        return None
    with contextlib.suppress(KeyError):
        return current_store().pixels(raw_image_id(raw, size))
    return None


def _adopt_image(image: Any) -> Any:
    """A decoded image as the parent knows it: the stored object when its id is known, else registered."""
    iid = image_id(image)
    if current_store().record(iid) is not None:
        if image.mode == "RGB":
            with contextlib.suppress(KeyError):
                return current_store().pixels(iid)
        return image
    current_store().register(image, meta={"origin": "sandbox"})
    return image


def _remove_tree(path: str) -> None:
    """Remove the work directory even when the code made parts of it read-only.

    Only real directories inside ``path`` are ever chmod-ed: the code may have left symlinks
    to files outside, and following one would change that file's permissions.
    """
    root = os.path.realpath(path)

    def make_writable(directory: str) -> None:
        with contextlib.suppress(OSError):
            real = os.path.realpath(directory)
            if (real == root or real.startswith(root + os.sep)) and stat.S_ISDIR(os.lstat(directory).st_mode):
                os.chmod(directory, stat.S_IRWXU)

    def retry(function: Any, target: str, _exc: Any) -> None:
        make_writable(os.path.dirname(target))
        make_writable(target)
        with contextlib.suppress(OSError):
            function(target)

    with contextlib.suppress(OSError):
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=retry)
        else:
            shutil.rmtree(path, onerror=retry)
