"""The sandbox child: runs model-written code and nothing else.

Started by :mod:`aim_agent.agent.sandbox.runner` as ``python -I -c <bootstrap>``; the
bootstrap loads this file, :mod:`wire`, :mod:`landlock`, :mod:`seccomp` and :mod:`isolation`
from their paths (so ``aim_agent`` itself is not imported) and calls :func:`main` with the two
file descriptors of the protocol channel and the parent's pid. Model code may catch
``ToolError`` (a name in its namespace); a tool's ``ValueError`` arrives as a ``ToolError``
that is also a ``ValueError`` (likewise for the common builtins).

Order of events, all before any model code runs: die with the parent, read the ``start``
message (code, entry name, object specs, limits), enter the namespaces and fork down to the
worker that will run the code (:func:`isolation.enter`: the processes above it only wait and
pass its exit status up), drop privileges, set the resource limits, apply Landlock, install
the seccomp filter, and say what is in force in the ``ready`` message (or refuse, with a
``refused`` message, when nothing isolates the code and that was not allowed). Then reserve a
little memory to report a ``MemoryError`` with, ``exec`` the code in a fresh namespace and
call the entry function with one :class:`Proxy` per object. Every proxy method call becomes a
``call`` message; the parent's ``result`` comes back as the return value, or as a
:class:`ToolError` raised at the model's line. The last message is ``done``.
"""

from __future__ import annotations

import builtins
import contextlib
import faulthandler
import inspect
import linecache
import os
import sys
import threading
import traceback
from typing import Any, NoReturn

try:
    from . import isolation, landlock, seccomp, wire
except ImportError:  # loaded from its path by the bootstrap, outside the aim_agent package
    import _aim_sandbox_isolation as isolation  # type: ignore[no-redef, import-not-found]
    import _aim_sandbox_landlock as landlock  # type: ignore[no-redef, import-not-found]
    import _aim_sandbox_seccomp as seccomp  # type: ignore[no-redef, import-not-found]
    import _aim_sandbox_wire as wire  # type: ignore[no-redef, import-not-found]

FILENAME = "<experiment>"
_RESERVE_BYTES = 8 * 1024 * 1024
_MACHINERY = frozenset({os.path.abspath(__file__), os.path.abspath(wire.__file__)})


class ToolError(Exception):
    """An error raised by the parent while it ran a call of the model's code."""


class SandboxProtocolError(RuntimeError):
    """The parent answered something the child did not expect (should never happen)."""


_ERROR_CLASSES: dict[str, type[ToolError]] = {}
_BUILTIN_ERRORS = {
    name: getattr(builtins, name)
    for name in (
        "ValueError",
        "TypeError",
        "KeyError",
        "IndexError",
        "LookupError",
        "AttributeError",
        "RuntimeError",
        "NotImplementedError",
        "FileNotFoundError",
        "PermissionError",
        "ZeroDivisionError",
        "ArithmeticError",
    )
}


def tool_error(error_type: str, message: str) -> ToolError:
    """A ToolError that is also an instance of the builtin class the parent raised, if any.

    So ``except ValueError`` in model code catches a ValueError raised by a tool.
    """
    base = _BUILTIN_ERRORS.get(error_type)
    if base is None:
        return ToolError(message)
    cls = _ERROR_CLASSES.get(error_type)
    if cls is None:
        cls = type("ToolError", (ToolError, base), {"__module__": "sandbox"})
        _ERROR_CLASSES[error_type] = cls
    return cls(message)


ToolError.__module__ = "sandbox"


class Channel:
    """The child's end of the protocol: blocking reads and writes on two pipe descriptors."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self._rfd = rfd
        self._wfd = wfd
        self._lock = threading.Lock()
        self._next_id = 0
        self.limit = wire.MAX_MESSAGE_BYTES

    def send(self, message: dict[str, Any]) -> None:
        data = memoryview(wire.dumps(message, self.limit))
        while data:
            written = os.write(self._wfd, data)
            data = data[written:]

    def _read_exactly(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = os.read(self._rfd, min(left, 1 << 20))
            if not chunk:
                raise SandboxProtocolError("the parent closed the sandbox channel")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def recv(self) -> dict[str, Any]:
        length = wire.frame_length(self._read_exactly(wire.HEADER.size), self.limit)
        return wire.loads(self._read_exactly(length))

    def call(self, obj: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Ask the parent to run ``obj.method(*args, **kwargs)``; its result or its error."""
        try:
            payload = {
                "args": wire.encode(list(args), limit=self.limit),
                "kwargs": wire.encode(kwargs, limit=self.limit),
            }
        except wire.MessageTooLarge as exc:
            raise ValueError(f"arguments of {obj}.{method}: {exc}") from None
        except TypeError as exc:
            raise TypeError(f"arguments of {obj}.{method}: {exc}") from None
        with self._lock:
            self._next_id += 1
            call_id = self._next_id
            try:
                self.send({"type": "call", "id": call_id, "object": obj, "method": method, **payload})
            except wire.MessageTooLarge as exc:
                raise ValueError(f"arguments of {obj}.{method}: {exc}") from None
            reply = self.recv()
        if reply.get("type") != "result" or reply.get("id") != call_id:
            raise SandboxProtocolError(f"unexpected reply to {obj}.{method}: {reply.get('type')!r}")
        if reply.get("ok"):
            return wire.decode(reply.get("value"), tensors="if_imported")
        raise tool_error(str(reply.get("error_type", "")), str(reply.get("error", f"{obj}.{method} failed")))


def make_method(channel: Channel, obj: str, name: str, doc: str) -> Any:
    """A proxy method: calling it runs the real method in the parent (``help()`` shows its doc)."""

    def method(*args: Any, **kwargs: Any) -> Any:
        return channel.call(obj, name, args, kwargs)

    method.__name__ = name
    method.__qualname__ = f"{obj}.{name}"
    method.__doc__ = doc or f"{obj}.{name}(...): runs outside the sandbox"
    return method


class Proxy:
    """Stands in for a parent object (``system``, ``tools``): allowed methods, plain attributes."""

    def __init__(self, channel: Channel, spec: dict[str, Any], path: str = "") -> None:
        name = str(spec["name"])
        self._path = f"{path}.{name}" if path else name
        self._channel = channel
        self._methods = {
            str(m["name"]): f"{self._path}.{m['name']}{m.get('signature', '(...)')}\n\n{m.get('doc') or ''}".strip()
            for m in spec.get("methods", [])
        }
        self._attributes = wire.decode(spec.get("attributes", {}), tensors="if_imported")
        self._children = {str(c["name"]): Proxy(channel, c, self._path) for c in spec.get("children", [])}
        self.__doc__ = spec.get("doc") or None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._attributes:
            return self._attributes[name]
        if name in self._children:
            return self._children[name]
        if name in self._methods:
            return make_method(self._channel, self._path, name, self._methods[name])
        raise AttributeError(f"{self._path} has no method or attribute {name!r}; {self._available()}")

    def _available(self) -> str:
        methods = ", ".join(sorted(self._methods)) or "none"
        attrs = ", ".join(sorted([*self._attributes, *self._children])) or "none"
        return f"methods: {methods}; attributes: {attrs}"

    def __dir__(self) -> list[str]:
        return sorted([*self._methods, *self._attributes, *self._children])

    def __repr__(self) -> str:
        return f"<{self._path}: {self._available()}>"


def _apply_rlimits(limits: dict[str, Any]) -> list[str]:
    """Set the resource limits (soft and hard, so the code cannot raise them); the ones that failed."""
    import resource

    failed: list[str] = []

    def cap(name: str, soft: int | None, hard: int | None = None) -> None:
        if soft is None or not hasattr(resource, name):
            return
        which = getattr(resource, name)
        hard = soft if hard is None else hard
        try:
            _, current_hard = resource.getrlimit(which)
            if current_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, current_hard), min(hard, current_hard)
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            failed.append(name)

    cap("RLIMIT_CORE", 0)
    cap("RLIMIT_AS", limits.get("memory_bytes"))
    cpu = limits.get("cpu_time_s")
    if cpu is not None:
        cap("RLIMIT_CPU", int(cpu), int(cpu) + 2)  # SIGXCPU first, SIGKILL 2 s later
    cap("RLIMIT_FSIZE", limits.get("file_size_bytes"))
    cap("RLIMIT_NOFILE", limits.get("open_files"))
    processes = limits.get("max_processes", 1)
    if processes is not None and processes > 1:  # 1: seccomp refuses fork (RLIMIT_NPROC would count threads)
        cap("RLIMIT_NPROC", processes)
    return failed


def _python_paths(extra_read: list[str]) -> list[str]:
    """What the code must be able to read: the Python installation, ``sys.path``, ``read_paths``."""
    read = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    read.update(p for p in sys.path if p and os.path.isabs(p) and os.path.exists(p))
    read.update(extra_read)
    return sorted(read)


def _hidden_dirs(limits: dict[str, Any]) -> list[str]:
    """The directories to hide: the parent's list, and where this process's own ``sys.path`` finds the packages.

    Only located, never imported (``find_spec`` of a top-level name runs no code of the package).
    """
    found = {str(p) for p in limits.get("hidden_paths", [])}
    import importlib.util

    for name in limits.get("hidden_packages", []):
        with contextlib.suppress(ImportError, ValueError, AttributeError):
            spec = importlib.util.find_spec(str(name))
            for location in (spec.submodule_search_locations or []) if spec is not None else []:
                if os.path.isdir(location):
                    found.add(os.path.realpath(location))
    return sorted(found)


def _landlock(workdir: str, extra_read: list[str]) -> tuple[int, str]:
    read = set(_python_paths(extra_read))
    read.update(("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/localtime"))
    read.update(("/dev/null", "/dev/urandom", "/dev/random", "/dev/zero", "/proc/cpuinfo", "/proc/meminfo"))
    read.update(("/sys/devices/system/cpu", "/sys/fs/cgroup"))
    with contextlib.suppress(OSError):  # /proc/self of the child only; never the parent's
        read.add(f"/proc/{os.readlink('/proc/self')}")
    return landlock.restrict(sorted(read), [workdir, "/dev/null"])


def _format_error(exc: BaseException) -> str:
    """The model's traceback, without the frames of the sandbox machinery."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, capture_locals=False)
    seen: set[int] = set()
    stack = [te]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        kept = [f for f in current.stack if os.path.abspath(f.filename) not in _MACHINERY]
        current.stack = traceback.StackSummary.from_list(kept)
        stack.extend(x for x in (current.__cause__, current.__context__) if x is not None)
    return "".join(te.format())


def _error_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def run(channel: Channel, start: dict[str, Any]) -> dict[str, Any]:
    """Run the experiment described by ``start``; the ``done`` message to send back."""
    code, entry = str(start["code"]), str(start["entry"])
    reserve = bytearray(_RESERVE_BYTES)
    linecache.cache[FILENAME] = (len(code), None, code.splitlines(keepends=True), FILENAME)
    namespace: dict[str, Any] = {"__name__": "__experiment__", "__builtins__": builtins, "ToolError": ToolError}
    try:
        proxies = [Proxy(channel, spec) for spec in start.get("objects", [])]
        compiled = compile(code, FILENAME, "exec")
        exec(compiled, namespace)
        function = namespace.get(entry)
        if not callable(function):
            names = sorted(k for k, v in namespace.items() if inspect.isfunction(v))
            found = f"functions defined: {', '.join(names)}" if names else "no functions are defined"
            return {
                "type": "done",
                "ok": False,
                "kind": "missing_entry",
                "error": f"the code must define a function `def {entry}(...)` at top level; {found}",
            }
        value = function(*proxies)
        if inspect.iscoroutine(value):
            import asyncio  # only here: importing it takes longer than starting the child

            value = asyncio.run(value)
    except MemoryError as exc:
        del reserve
        text = _format_error(exc)
        return {
            "type": "done",
            "ok": False,
            "kind": "memory",
            "error": _error_line(exc) + " (memory limit reached)",
            "traceback": text,
        }
    except BaseException as exc:
        kind = "syntax_error" if isinstance(exc, SyntaxError) and exc.filename == FILENAME else "runtime_error"
        return {"type": "done", "ok": False, "kind": kind, "error": _error_line(exc), "traceback": _format_error(exc)}
    try:
        encoded = wire.encode(value, limit=channel.limit)
    except (TypeError, ValueError) as exc:
        return {
            "type": "done",
            "ok": False,
            "kind": "runtime_error",
            "error": f"the return value of {entry}() cannot be sent back: {exc}",
        }
    return {"type": "done", "ok": True, "value": encoded}


def _isolate(limits: dict[str, Any], channel: Channel, parent_pid: int) -> dict[str, Any]:
    """Every layer, in order; returns in the process that runs the code (see :mod:`isolation`).

    The ``ready`` message to send: what is in force. When nothing isolates the code (no
    namespaces, no seccomp) and ``allow_unsafe`` is not set, the child refuses and exits.
    """
    workdir = os.getcwd()
    read_paths = [str(p) for p in limits.get("read_paths", [])]
    try:
        state = isolation.enter(
            workdir,
            parent_pid,
            readable=_python_paths(read_paths),
            keep_fds=[channel._rfd, channel._wfd],
            namespaces=bool(limits.get("namespaces", True)),
            hidden=_hidden_dirs(limits),
            allow_unsafe=bool(limits.get("allow_unsafe")),
            workdir_bytes=limits.get("workdir_bytes"),
        )
    except isolation.Refused as exc:
        _refuse(channel, str(exc))
    workdir = os.getcwd()
    ready: dict[str, Any] = {"type": "ready", "isolation": state, "landlock_abi": 0}
    ready["rlimits_failed"] = _apply_rlimits(limits)
    ready["landlock"] = "not requested"
    if limits.get("landlock", True):
        abi, reason = _landlock(workdir, read_paths)
        ready.update(landlock_abi=abi, landlock=reason or f"in force (ABI {abi})")
        if not abi and limits.get("require_landlock"):
            channel.send({"type": "done", "ok": False, "kind": "killed", "error": f"Landlock is required: {reason}"})
            os._exit(3)
    max_processes = limits.get("max_processes", 1)
    ready["fork"] = max_processes != 1
    ready["seccomp"] = "not requested"
    if limits.get("seccomp", True):
        # without the read-only mount view nothing stops chmod/utime of a file outside the work
        # directory, and seccomp cannot read paths: refuse those calls everywhere
        guarded = "read-only except the work directory" in state.get("fs", [])
        ok, reason = seccomp.install(allow_fork=max_processes != 1, deny_metadata=not guarded)
        ready["metadata"] = "mount view" if guarded else "seccomp"
        ready["seccomp"] = "in force" if ok else reason
    isolated = state.get("pid_namespace") or ready["seccomp"] == "in force"
    if not isolated and not limits.get("allow_unsafe"):
        lacks = "; ".join([*state.get("problems", []), f"seccomp: {ready['seccomp']}"])
        _refuse(channel, f"no isolation layer works on this machine ({lacks}); run AIM on Linux with user "
                "namespaces (or as root) or seccomp")
    return ready


def _refuse(channel: Channel, reason: str) -> NoReturn:
    channel.send({"type": "refused", "error": reason})
    os._exit(3)


def main(rfd: int, wfd: int, parent_pid: int) -> None:
    channel = Channel(rfd, wfd)
    isolation.die_with_parent(parent_pid)
    start = channel.recv()
    wire.IMAGE_FORMAT = "png" if start.get("images") == "png" else "raw"
    limits = start.get("limits", {})
    channel.limit = int(limits.get("max_message_bytes", wire.MAX_MESSAGE_BYTES))
    # line buffering: prints reach the parent even when the child is killed mid-run
    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace")  # type: ignore[union-attr]
    faulthandler.enable()  # a segfault prints the model's line on stderr
    ready = _isolate(limits, channel, parent_pid)
    channel.send(ready)
    try:
        done = run(channel, start)
    except BaseException as exc:  # the channel itself failed
        done = {"type": "done", "ok": False, "kind": "protocol_error", "error": _error_line(exc)}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    try:
        channel.send(done)
    except (ValueError, TypeError) as exc:  # too large, or an int too long for JSON
        channel.send(
            {
                "type": "done",
                "ok": False,
                "kind": "runtime_error",
                "error": f"the return value cannot be sent back: {exc}",
            }
        )
    os._exit(0)  # do not wait for threads the model's code left running
