"""Namespaces, an unprivileged user and a process tree that dies as one, for the sandbox child.

:func:`enter` is called by the child (started by the parent as ``python -I``) once it has read
its ``start`` message; it returns in the process that will run the model's code, the
*worker*, and never in the others. On Linux, as far as the machine allows:

1. The started process (the *outer*), which already dies with the parent
   (:func:`die_with_parent`, called first thing by the child), moves into new
   PID, network, IPC, UTS and mount namespaces (as root), or a new user namespace with
   those (as any other user, where unprivileged user namespaces are allowed).
2. In the mount namespace every mount becomes read-only except the work directory, so no
   path outside it can be written, renamed, ``chmod``-ed or ``utime``-d whatever the file's
   owner. Directories the sandbox user could not enter (``/root`` holding a pyenv Python)
   are replaced by an empty ``tmpfs`` into which only the needed paths are bind-mounted
   back: the Python installation and ``sys.path`` stay readable, the rest stays hidden.
3. The outer forks the namespace's *init* (pid 1), which mounts a ``/proc`` of the new PID
   namespace and forks the worker. When init ends, the kernel kills every process of the
   namespace: no grandchild survives the run, even one that called ``setsid``. The outer
   and init pass the worker's exit status up, so the parent sees the worker's exit code
   or signal.
4. The worker gives up its privileges for good: as root it empties its capability bounding
   set and becomes a *fresh* uid/gid of its own (:func:`fresh_uid`: a random id from
   :data:`FRESH_UIDS` that no process and no account uses, so no other process on the host
   can write its work directory, signal it or read its memory), which clears its
   capabilities; in a user namespace it keeps its own uid and drops every capability. It is
   not dumpable (no core file, no ``ptrace``/``/proc/<pid>/mem`` by its own uid). It dies
   with init, and the network namespace has no interface but a loopback that is down.
5. With a mount namespace, the work directory is a size-limited ``tmpfs`` (the work
   directory quota): what the code writes there is bounded, and cannot fill the host's disk.

Model code never runs as root: where the fresh uid cannot read the Python installation and
no mount namespace can expose it (a container without ``CAP_SYS_ADMIN`` and Python under
``/root``), :func:`enter` raises :class:`Refused` (the child refuses the run) unless
``allow_unsafe`` is set; only then does the code keep uid 0, without capabilities.

Anything that fails is skipped and reported: the returned dict says what is in force, and
the runner puts it in ``SandboxResult.isolation``. Standard library and ctypes only: the
child loads this file from its path.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import stat
import struct
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
_NAMESPACES = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID = 0x1, 0x2
_AT_FDCWD, _AT_RECURSIVE = -100, 0x8000
_MNT_DETACH = 2
_SYS_MOUNT_SETATTR = 442  # the same on every architecture

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAPSET = {"x86_64": 126, "aarch64": 91}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

#: where the fresh uid/gid of a run is drawn from when the sandbox starts as root: above every
#: range that distributions, ``/etc/subuid`` allocations and systemd (containers up to
#: 0x6FFFFFFF, its "foreign" range at 0x7FFE0000) hand out, below 2**31 (ids some tools read as signed)
FRESH_UIDS = range(0x70000000, 0x7FFE0000)
#: the user whose permissions decide what a fresh uid may read: it owns no file, so only "other" bits count
NOBODY = 65534


class Refused(Exception):
    """Isolation cannot be set up without running the code as root; the text says what the machine lacks."""


def _ids_in_use() -> set[int]:
    """Uids and gids of every running process and every account (``/etc/passwd``, ``/etc/group``)."""
    used: set[int] = set()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{entry}/status") as f:
            for line in f:
                if line.startswith(("Uid:", "Gid:")):
                    used.update(int(x) for x in line.split()[1:])
    for table in ("/etc/passwd", "/etc/group"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f:
                parts = line.split(":")
                with contextlib.suppress(IndexError, ValueError):
                    used.add(int(parts[2]))
    return used


def fresh_uid() -> int:
    """A random uid (also used as the gid) from :data:`FRESH_UIDS` that no process or account uses."""
    used = _ids_in_use()
    while True:
        candidate = FRESH_UIDS.start + int.from_bytes(os.urandom(4), "little") % len(FRESH_UIDS)
        if candidate not in used:
            return candidate


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_libc_handle: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _libc_handle
    if _libc_handle is None:
        _libc_handle = ctypes.CDLL(None, use_errno=True)
        _libc_handle.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _libc_handle.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
    return _libc_handle


def _fail(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def _prctl(option: int, arg: int = 0) -> None:
    if _libc().prctl(option, arg, 0, 0, 0) != 0:
        raise _fail(f"prctl({option})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if s is None else os.fsencode(s) for s in (source, target, fstype, data)]
    if _libc().mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
        raise _fail(f"mount {target}")


def _mount_setattr(path: str, flags: int, attr_set: int, attr_clr: int) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    ret = _libc().syscall(
        _SYS_MOUNT_SETATTR,
        ctypes.c_int(_AT_FDCWD),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if ret != 0:
        raise _fail(f"mount_setattr {path}")


def die_with_parent(expected_ppid: int) -> None:
    """SIGKILL this process when its parent ends; exit now if the parent already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != expected_ppid:  # the parent died before the prctl: we were re-parented
        os._exit(1)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the file system view


def _blocked_dirs(paths: list[str], uid: int) -> dict[str, list[str]]:
    """For paths ``uid`` cannot reach: the highest directory on the way it may not enter -> those paths."""
    blocked: dict[str, list[str]] = {}
    for path in paths:
        real = os.path.realpath(path)
        current = "/"
        for part in [p for p in real.split("/") if p]:
            try:
                st = os.stat(current)
            except OSError:
                break
            if current != "/" and not (st.st_mode & stat.S_IXOTH or (st.st_uid == uid and st.st_mode & stat.S_IXUSR)):
                if os.path.exists(real):
                    blocked.setdefault(current, []).append(real)
                break
            current = os.path.join(current, part)
    return blocked


def _unreadable(paths: list[str], uid: int) -> list[str]:
    """Those of ``paths`` that ``uid`` may not read (a directory it may not list, a file it may not open)."""
    found = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
        if st.st_uid != uid and st.st_mode & need != need:
            found.append(path)
    return found


def _expose(blocked: dict[str, list[str]]) -> None:
    """Replace each blocked directory by a tmpfs holding bind mounts of the needed paths only.

    On failure every tmpfs is taken away again (the caller then keeps uid 0 instead).
    """
    fds: dict[str, int] = {}
    covered: list[str] = []
    umask = os.umask(0o022)
    try:
        for paths in blocked.values():  # open everything before anything is covered
            for path in paths:
                with contextlib.suppress(OSError):
                    fds[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
        for directory, paths in blocked.items():
            _mount("tmpfs", directory, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=64k,nr_inodes=1024")
            covered.append(directory)
            bound: list[str] = []
            for path in sorted(set(paths), key=len):  # a path inside one already bound needs nothing
                fd = fds.get(path)
                if fd is None or any(path.startswith(b + "/") or path == b for b in bound):
                    continue
                os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    os.mkdir(path, 0o755)
                else:
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
                _mount(f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC)
                bound.append(path)
    except OSError:
        for directory in reversed(covered):
            _libc().umount2(os.fsencode(directory), _MNT_DETACH)
        raise
    finally:
        os.umask(umask)
        for fd in fds.values():
            os.close(fd)


def _hide(directories: list[str]) -> int:
    """Mount an empty, read-only tmpfs over each directory; how many were covered."""
    covered = 0
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        try:
            _mount("tmpfs", directory, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC | _MS_RDONLY,
                   "mode=0555,size=4k,nr_inodes=8")
            covered += 1
        except OSError:
            pass
    return covered


def _read_only_except(workdir: str, quota: int | None, uid: int | None) -> None:
    """Every mount read-only (and nosuid), except ``workdir``: a tmpfs of ``quota`` bytes, or a bind mount."""
    if quota:
        owner = f",uid={uid},gid={uid}" if uid else ""
        inodes = max(64, quota // 8192)
        _mount("tmpfs", workdir, "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={quota},nr_inodes={inodes},mode=0700{owner}")
    else:
        _mount(workdir, workdir, None, _MS_BIND | _MS_REC)
    _mount_setattr("/", _AT_RECURSIVE, _MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0)
    _mount_setattr(workdir, 0, 0, _MOUNT_ATTR_RDONLY)
    os.chdir(workdir)  # the bind mount, not the read-only directory underneath


# ---------------------------------------------------------------- privileges


def _cap_last() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 63


def _drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets."""
    for cap in range(_cap_last() + 1):
        with contextlib.suppress(OSError):
            _prctl(_PR_CAPBSET_DROP, cap)
    with contextlib.suppress(OSError):
        _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    number = _CAPSET.get(os.uname().machine)
    if number is None:
        return
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if _libc().syscall(number, ctypes.byref(header), ctypes.byref(data)) != 0:
        raise _fail("capset")


def capabilities() -> dict[str, int]:
    """CapEff, CapPrm, CapBnd, CapAmb, CapInh of this process (from /proc/self/status)."""
    caps: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Cap"):
                name, value = line.split(":", 1)
                caps[name] = int(value, 16)
    return caps


def _become(uid: int, gid: int, workdir: str) -> None:
    """As root: hand the work directory to ``uid`` and become it, without any capability."""
    os.chown(workdir, uid, gid)
    for cap in range(_cap_last() + 1):
        with contextlib.suppress(OSError):
            _prctl(_PR_CAPBSET_DROP, cap)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # all ids non-zero: the kernel clears every capability


# ---------------------------------------------------------------- the process tree


def _mirror(pid: int, status_fd: int | None) -> None:
    """Wait for ``pid``, then end this process the way the worker ended (exit code or signal)."""
    _, status = os.waitpid(pid, 0)
    if status_fd is not None:
        data = os.read(status_fd, 4)
        if len(data) == 4:
            (status,) = struct.unpack("=i", data)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _init(worker_fds: list[int], status_w: int, alive_r: int) -> bool:
    """In pid 1 of the new namespace: mount its /proc, fork the worker, reap, report, end the namespace.

    Returns only in the worker: whether the new /proc is mounted.
    """
    die_with_parent(os.getppid())  # the outer is outside the namespace: getppid() is 0 here
    if select.select([alive_r], [], [], 0)[0]:  # the outer died before the prctl above
        os._exit(1)
    os.close(alive_r)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # init ignores signals without a handler
    proc_ok = True
    try:
        _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC | _MS_RDONLY)
    except OSError:
        proc_ok = False
    worker = os.fork()
    if worker == 0:
        os.close(status_w)
        return proc_ok
    for fd in worker_fds:
        os.close(fd)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == worker:
            os.write(status_w, struct.pack("=i", status))
            os._exit(0)  # the kernel now kills whatever is left in the namespace


def enter(
    workdir: str,
    parent_pid: int,
    *,
    readable: list[str],
    keep_fds: list[int],
    namespaces: bool = True,
    hidden: list[str] | None = None,
    allow_unsafe: bool = False,
    workdir_bytes: int | None = None,
) -> dict[str, Any]:
    """Isolate this process as far as the machine allows; returns in the worker only.

    ``readable`` are the paths the worker must read (Python, ``sys.path``); ``hidden`` are
    directories it must not see at all (an empty tmpfs is mounted over each); ``keep_fds``
    are the worker's protocol channel (closed in the outer and init); ``workdir_bytes`` is the
    size of the work directory's tmpfs (None: no quota). The dict says what is in force:
    ``namespaces`` (names), ``uid``, ``fs`` (notes), ``problems`` (what failed).

    Raises :class:`Refused` (before anything is forked) when the code could only run as root
    and ``allow_unsafe`` is not set.
    """
    report: dict[str, Any] = {"namespaces": [], "fs": [], "problems": [], "pid_namespace": False}
    if not sys.platform.startswith("linux"):
        report["problems"].append("namespaces are Linux only")
        return _finish(report, workdir, None, parent_pid)
    root = os.geteuid() == 0
    target_uid = fresh_uid() if root else None
    names = _unshare(root, report) if namespaces else []
    if not namespaces:
        report["problems"].append("namespaces not requested")
    private = False
    if "mount" in names:
        try:  # nothing done from here on reaches the parent's mount namespace
            _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
            private = True
        except OSError as exc:
            report["problems"].append(f"mount namespace: {exc}")
    blocked = _blocked_dirs([*readable, workdir], NOBODY) if root else {}
    if blocked and private:
        try:
            _expose(blocked)
            report["fs"].append(f"{', '.join(sorted(blocked))}: only the paths Python needs")
            blocked = {}
        except OSError as exc:
            report["problems"].append(f"cannot expose {', '.join(sorted(blocked))}: {exc}")
    if hidden and private:
        covered = _hide(hidden)
        if covered:
            report["fs"].append(f"{covered} package director{'y' if covered == 1 else 'ies'} hidden")
        if covered < len([d for d in hidden if os.path.isdir(d)]):
            report["problems"].append("some package directories could not be hidden")
    elif hidden:
        report["problems"].append("package directories not hidden (no mount namespace)")
    unreadable = [*blocked, *_unreadable(readable, NOBODY)] if root else []
    if unreadable:  # the Python installation is out of reach of any unprivileged uid
        where = ", ".join(sorted(unreadable))[:300]
        if not allow_unsafe:
            lacks = "no mount namespace to expose it" + (f" ({'; '.join(report['problems'])[:300]})"
                                                          if report["problems"] else "")
            raise Refused(
                f"model code would run as root: an unprivileged uid cannot read {where} (the Python "
                f"installation or sys.path) and there is {lacks}. Install Python where every user may read it, "
                "or run where namespaces work (CAP_SYS_ADMIN, or unprivileged user namespaces)"
            )
        target_uid = 0
        report["problems"].append(f"uid 0 kept (unsafe sandbox allowed): no other uid can read {where}")
    if private:
        try:
            _read_only_except(workdir, workdir_bytes, target_uid)
            report["fs"].insert(0, "read-only except the work directory")
            if workdir_bytes:
                report["fs"].insert(1, f"work directory quota {workdir_bytes // 2**20} MiB")
        except OSError as exc:
            report["problems"].append(f"read-only file system: {exc}")
    if not private or not workdir_bytes:
        report["problems"].append("work directory quota measured by the agent, not a tmpfs (no mount namespace)"
                                  if workdir_bytes else "no work directory quota (not requested)")
    if "pid" in names:
        status_r, status_w = os.pipe()
        alive_r, alive_w = os.pipe()
        init = os.fork()
        if init == 0:
            os.close(status_r)
            os.close(alive_w)
            report["pid_namespace"] = True
            if _init(keep_fds, status_w, alive_r):
                report["fs"].append("own /proc")
            else:
                report["problems"].append("no /proc of the new PID namespace")
            return _finish(report, workdir, target_uid, 1)
        for fd in (*keep_fds, status_w, alive_r):
            os.close(fd)
        _mirror(init, status_r)  # never returns
    return _finish(report, workdir, target_uid, parent_pid)


def _unshare(root: bool, report: dict[str, Any]) -> list[str]:
    libc = _libc()
    uid, gid = os.geteuid(), os.getegid()
    flags = _NAMESPACES if root else _NAMESPACES | CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        report["problems"].append(f"namespaces: unshare failed: {os.strerror(ctypes.get_errno())}")
        return []
    names = ["pid", "net", "ipc", "uts", "mount"] if root else ["user", "pid", "net", "ipc", "uts", "mount"]
    if not root:
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        except OSError as exc:
            report["problems"].append(f"user namespace: cannot map ids: {exc.strerror}")
    with contextlib.suppress(OSError):
        if libc.sethostname(b"sandbox", 7) != 0:
            raise _fail("sethostname")
    report["namespaces"] = names
    return names


def _finish(report: dict[str, Any], workdir: str, target_uid: int | None, expected_ppid: int) -> dict[str, Any]:
    """In the worker: drop privileges, die with the parent process, say what is in force."""
    if sys.platform.startswith("linux"):
        try:
            if target_uid:
                _become(target_uid, target_uid, workdir)
            else:
                _drop_capabilities()
        except OSError as exc:
            report["problems"].append(f"privileges: {exc}")
        try:  # no core file, and no ptrace or /proc/<pid>/mem by anything else with its uid
            _prctl(_PR_SET_DUMPABLE, 0)
            report["dumpable"] = False
        except OSError as exc:
            report["problems"].append(f"dumpable: {exc}")
        die_with_parent(expected_ppid)  # after the uid change, which clears the parent-death signal
        report["pdeathsig"] = True
    report["uid"], report["gid"] = os.getuid(), os.getgid()
    caps = capabilities()
    report["capabilities"] = {k: v for k, v in caps.items() if v}
    return report
