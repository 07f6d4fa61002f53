"""A seccomp filter for the sandbox child, written as classic BPF with ctypes (no package needed).

After :func:`install`, the kernel checks every system call of the child (and of every thread
and process it starts) against a small BPF program before running it. A refused call fails
with ``EPERM``, so Python raises a readable ``PermissionError``; nothing is killed. Refused:

- ``socket()`` for every family (the child talks to its parent over inherited pipes, so it
  needs none): no TCP, UDP, MPTCP, raw or packet socket, no named or abstract UNIX socket;
  ``socketpair`` stays, for ``SOCK_STREAM`` only (a datagram pair could ``sendto`` a path);
- ``execve``/``execveat``: ``subprocess`` and ``os.system`` fail once the interpreter runs;
- new processes, when ``allow_fork`` is False: ``fork``, ``vfork`` and ``clone`` without
  ``CLONE_THREAD`` (threads keep working); ``clone`` with namespace flags always;
  ``clone3`` returns ``ENOSYS``, so the C library falls back to ``clone``, whose flags a
  classic BPF filter can read;
- the kernel keyring (``add_key``, ``request_key``, ``keyctl``), ``ptrace``, reading or
  writing another process's memory, ``perf_event_open``, ``bpf``, ``userfaultfd``,
  ``io_uring`` (its requests would bypass this filter), mounts and namespaces, ``chroot``,
  modules, ``kexec``, ``reboot``, swap, clocks, host names, quotas, ``open_by_handle_at``;
- changing owners and extended attributes (``chown``, ``setxattr``, ... any path);
- ``memfd_create`` and ``memfd_secret``: anonymous files whose pages ``RLIMIT_AS`` does not
  count (six 256 MiB memfds held 1.5 GiB under a 512 MiB limit);
- with ``deny_metadata`` (where no read-only mount view guards the paths outside the work
  directory, and a filter cannot read a path): ``chmod``, ``fchmod``, ``fchmodat``,
  ``fchmodat2`` and ``utime``, ``utimes``, ``futimesat``, ``utimensat``, on any file;
- switching user or group ids, ``capset``, ``prctl(PR_SET_PDEATHSIG)`` (so the child cannot
  outlive its parent) and the terminal ioctls ``TIOCSTI``/``TIOCLINUX``;
- any system call newer than the table (``ENOSYS``), the x32 ABI, and other architectures.

Everything else is allowed: the filter is a deny-list over the ~300 calls CPython, numpy,
torch and BLAS threads use (an allow-list would break on the next library or libc release),
closed by the "newer than the table" rule. Only x86_64 and aarch64 are known;
elsewhere :func:`install` says so and installs nothing.

Loaded by the child from its path (standard library and ctypes only).
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_PR_GET_SECCOMP = 21
_SECCOMP_MODE_FILTER = 2

_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGT = 0x25  # BPF_JMP | BPF_JGT | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_AND = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RET = 0x06  # BPF_RET | BPF_K

# offsets in struct seccomp_data (little-endian: the low word of an argument comes first)
_NR, _ARCH = 0, 4


def _arg(i: int) -> int:
    return 16 + 8 * i


EPERM = _RET_ERRNO | errno.EPERM
ENOSYS = _RET_ERRNO | errno.ENOSYS

_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_AF_UNIX, _SOCK_STREAM = 1, 1
_PR_SET_PDEATHSIG = 1
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C

#: system calls refused with EPERM, by name (a name an architecture lacks is skipped)
DENIED = (
    # network: the child needs no socket at all
    "socket", "socketcall",
    # new programs
    "execve", "execveat",
    # kernel keyring
    "add_key", "request_key", "keyctl",
    # other processes, the kernel's tracing and BPF, io_uring (its requests bypass seccomp)
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
    "process_mrelease", "perf_event_open", "bpf", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "lookup_dcookie", "fanotify_init", "name_to_handle_at", "open_by_handle_at",
    # mounts and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "open_tree_attr",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "quotactl", "quotactl_fd",
    # the machine
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "swapon", "swapoff", "acct", "syslog", "vhangup", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl", "ioperm", "modify_ldt",
    "uselib", "_sysctl", "nfsservctl", "lsm_set_self_attr",
    # owners and extended attributes, on any path
    "chown", "fchown", "lchown", "fchownat", "setxattr", "lsetxattr", "fsetxattr", "setxattrat",
    "removexattr", "lremovexattr", "fremovexattr", "removexattrat", "file_setattr",
    # identities and capabilities
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid",
    "setfsgid", "capset",
    # memory RLIMIT_AS does not count
    "memfd_create", "memfd_secret",
)  # fmt: skip

#: refused too where paths outside the work directory are not read-only (no mount namespace): a
#: seccomp filter cannot tell a path inside the work directory from one outside
METADATA = (
    "chmod", "fchmod", "fchmodat", "fchmodat2", "utime", "utimes", "futimesat", "utimensat",
)  # fmt: skip

#: x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl)
_X86_64 = {
    "socket": 41, "socketpair": 53, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "ioctl": 16,
    "chown": 92, "fchown": 93, "lchown": 94, "ptrace": 101, "syslog": 103, "setuid": 105, "setgid": 106,
    "setreuid": 113, "setregid": 114, "setgroups": 116, "setresuid": 117, "setresgid": 119, "setfsuid": 122,
    "setfsgid": 123, "capset": 126, "uselib": 134, "vhangup": 153, "modify_ldt": 154, "pivot_root": 155,
    "_sysctl": 156, "prctl": 157, "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164,
    "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170,
    "setdomainname": 171, "iopl": 172, "ioperm": 173, "create_module": 174, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "nfsservctl": 180, "setxattr": 188, "lsetxattr": 189,
    "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199, "lookup_dcookie": 212,
    "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
    "fchownat": 260, "unshare": 272, "perf_event_open": 298, "fanotify_init": 300, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "kexec_file_load": 320, "bpf": 321,
    "execveat": 322, "userfaultfd": 323, "chmod": 90, "fchmod": 91, "utime": 132, "utimes": 235,
    "futimesat": 261, "fchmodat": 268, "utimensat": 280, "memfd_create": 319, "memfd_secret": 447,
}  # fmt: skip

#: aarch64 (and every architecture on the generic table, include/uapi/asm-generic/unistd.h)
_GENERIC = {
    "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
    "fremovexattr": 16, "lookup_dcookie": 18, "ioctl": 29, "umount2": 39, "mount": 40, "pivot_root": 41,
    "nfsservctl": 42, "fchownat": 54, "fchown": 55, "chroot": 51, "vhangup": 58, "quotactl": 60, "acct": 89,
    "capset": 91, "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106,
    "clock_settime": 112, "syslog": 116, "ptrace": 117, "reboot": 142, "setregid": 143, "setgid": 144,
    "setreuid": 145, "setuid": 146, "setresuid": 147, "setresgid": 149, "setfsuid": 151, "setfsgid": 152,
    "setgroups": 159, "sethostname": 161, "setdomainname": 162, "prctl": 167, "settimeofday": 170,
    "adjtimex": 171, "socket": 198, "socketpair": 199, "add_key": 217, "request_key": 218, "keyctl": 219,
    "clone": 220, "execve": 221, "swapon": 224, "swapoff": 225, "perf_event_open": 241, "fanotify_init": 262,
    "name_to_handle_at": 264, "open_by_handle_at": 265, "clock_adjtime": 266, "setns": 268,
    "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273, "bpf": 280,
    "execveat": 281, "userfaultfd": 282, "kexec_file_load": 294, "fchmod": 52, "fchmodat": 53,
    "utimensat": 88, "memfd_create": 279, "memfd_secret": 447,
}  # fmt: skip

#: numbers shared by every architecture since Linux 5.1
_UNIFIED = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
    "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442, "quotactl_fd": 443,
    "process_mrelease": 448, "lsm_set_self_attr": 460, "setxattrat": 463, "removexattrat": 466,
    "fchmodat2": 452, "open_tree_attr": 467, "file_setattr": 469,
}  # fmt: skip

#: the last system call the tables know; anything above it fails with ENOSYS
LAST_KNOWN = 469


class _Arch:
    def __init__(self, name: str, audit: int, numbers: dict[str, int], x32_bit: int | None) -> None:
        self.name, self.audit, self.numbers, self.x32_bit = name, audit, {**numbers, **_UNIFIED}, x32_bit


_ARCHES = {
    "x86_64": _Arch("x86_64", 0xC000003E, _X86_64, 0x40000000),
    "aarch64": _Arch("aarch64", 0xC00000B7, _GENERIC, None),
}


def current_arch() -> _Arch | None:
    """The table of this machine, or None (another architecture, or a 32-bit Python)."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if platform.system() != "Linux" or struct.calcsize("P") != 8:
        return None
    return _ARCHES.get(machine)


def _ins(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k & 0xFFFFFFFF)


def _block(nr: int, body: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """``if nr == <nr>: <body>`` (the body ends in returns; the accumulator is reloaded after it)."""
    return [_ins(_JEQ, nr, 0, len(body)), *body]


def program(arch: _Arch, *, allow_fork: bool, deny_metadata: bool = False) -> list[tuple[int, int, int, int]]:
    """The BPF program: a list of ``(code, jt, jf, k)`` instructions."""
    n = arch.numbers
    allow, deny = _ins(_RET, _RET_ALLOW), _ins(_RET, EPERM)
    prog = [
        _ins(_LD_W_ABS, _ARCH),
        _ins(_JEQ, arch.audit, 1, 0),
        deny,  # another ABI (32-bit calls on a 64-bit kernel): everything refused
        _ins(_LD_W_ABS, _NR),
    ]
    if arch.x32_bit is not None:
        prog += [_ins(_JGE, arch.x32_bit, 0, 1), deny]
    prog += [_ins(_JGT, LAST_KNOWN, 0, 1), _ins(_RET, ENOSYS)]
    prog += [_ins(_JEQ, n["clone3"], 0, 1), _ins(_RET, ENOSYS)]
    reload = _ins(_LD_W_ABS, _NR)
    # clone: never new namespaces; without CLONE_THREAD it makes a process
    clone = [_ins(_LD_W_ABS, _arg(0)), _ins(_JSET, _CLONE_NAMESPACES, 0, 1), deny]
    clone += [allow] if allow_fork else [_ins(_JSET, _CLONE_THREAD, 0, 1), allow, deny]
    prog += _block(n["clone"], clone)
    prog.append(reload)
    if not allow_fork:
        for name in ("fork", "vfork"):
            if name in n:
                prog += [_ins(_JEQ, n[name], 0, 1), deny]
    # socketpair: AF_UNIX stream pairs only
    pair = [_ins(_LD_W_ABS, _arg(0)), _ins(_JEQ, _AF_UNIX, 1, 0), deny]
    pair += [_ins(_LD_W_ABS, _arg(1)), _ins(_AND, 0xF), _ins(_JEQ, _SOCK_STREAM, 0, 1), allow, deny]
    prog += _block(n["socketpair"], pair)
    prog.append(reload)
    prctl = [_ins(_LD_W_ABS, _arg(0)), _ins(_JEQ, _PR_SET_PDEATHSIG, 0, 1), deny, allow]
    prog += _block(n["prctl"], prctl)
    prog.append(reload)
    ioctl = [_ins(_LD_W_ABS, _arg(1)), _ins(_JEQ, _TIOCSTI, 1, 0), _ins(_JEQ, _TIOCLINUX, 0, 1), deny, allow]
    prog += _block(n["ioctl"], ioctl)
    prog.append(reload)
    for name in (*DENIED, *(METADATA if deny_metadata else ())):
        if name in n:
            prog += [_ins(_JEQ, n[name], 0, 1), deny]
    prog.append(allow)
    if len(prog) > 4096:  # BPF_MAXINSNS
        raise ValueError("the seccomp program is too long")
    return prog


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def install(*, allow_fork: bool, deny_metadata: bool = False) -> tuple[bool, str]:
    """Install the filter on this process (for good: it is inherited and cannot be removed).

    Returns ``(True, "")``, or ``(False, reason)`` when nothing was installed.
    """
    arch = current_arch()
    if arch is None:
        return False, f"no seccomp table for {platform.system()} {platform.machine()}"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError) as exc:
        return False, f"no C library to call prctl: {exc}"
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if prctl(_PR_GET_SECCOMP, 0, None, 0, 0) < 0:
        return False, f"the kernel has no seccomp: {_strerror(ctypes.get_errno())}"
    instructions = program(arch, allow_fork=allow_fork, deny_metadata=deny_metadata)
    filters = (_SockFilter * len(instructions))(*[_SockFilter(c, jt, jf, k) for c, jt, jf, k in instructions])
    fprog = _SockFprog(len(instructions), filters)
    if prctl(_PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        return False, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {_strerror(ctypes.get_errno())}"
    if prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        return False, f"prctl(PR_SET_SECCOMP) failed: {_strerror(ctypes.get_errno())}"
    # check that it bites: socket() must now fail with EPERM
    fd = libc.socket(_AF_UNIX, _SOCK_STREAM, 0)
    if fd >= 0 or ctypes.get_errno() != errno.EPERM:
        if fd >= 0:
            libc.close(fd)
        return False, "the seccomp filter was installed but socket() was not refused"
    return True, ""


def _strerror(code: int) -> str:
    import os

    return os.strerror(code)
