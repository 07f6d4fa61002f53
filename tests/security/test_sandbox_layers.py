"""The sandbox's isolation layers themselves: what they let through, what they report, how they fail."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile

import pytest

from aim_agent.agent.sandbox import (
    SandboxLimits,
    SandboxUnavailable,
    clean_stale_workdirs,
    isolation,
    run_code,
    seccomp,
)

LINUX = sys.platform.startswith("linux")
LIMITS = SandboxLimits(wall_time_s=30, cpu_time_s=30, memory_bytes=2 * 2**30)


def _isolation() -> str:
    try:
        result = run_code("def run_experiment():\n    return 1\n", handlers={}, limits=LIMITS)
    except SandboxUnavailable:
        return ""
    return result.isolation


ISOLATION = _isolation() if LINUX else ""
needs_full = pytest.mark.skipif(
    not ("namespaces" in ISOLATION and "seccomp (" in ISOLATION),
    reason=f"namespaces and seccomp are not both available here ({ISOLATION or 'none'})",
)


# ---------------------------------------------------------------- what still works


@needs_full
def test_ordinary_experiments_still_work_under_every_layer() -> None:
    code = """
import asyncio, os, socket, threading
import numpy as np
from PIL import Image

async def gather():
    await asyncio.sleep(0)  # an event loop needs a stream socketpair
    return "async"

def run_experiment():
    sums = []
    work = lambda: sums.append(float(np.linalg.svd(np.eye(40))[1].sum()))
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    Image.new("RGB", (8, 8), (255, 0, 0)).save("red.png")
    os.mkdir("sub")
    os.chmod("sub", 0o700)
    os.utime("red.png")
    a, b = socket.socketpair()
    a.sendall(b"ok")
    return sums, sorted(os.listdir(".")), b.recv(2), asyncio.run(gather()), os.getpid()
"""
    result = run_code(code, handlers={}, limits=LIMITS)
    assert result.ok, result.report()
    sums, listing, pair, coroutine, pid = result.return_value
    assert sums == [40.0] * 4 and listing == ["red.png", "sub"] and pair == b"ok" and coroutine == "async"
    assert pid == 2  # pid 1 is the namespace's init


@needs_full
def test_torch_threads_run_in_the_sandbox() -> None:
    pytest.importorskip("torch")
    code = """
import torch
def run_experiment():
    torch.set_num_threads(4)
    x = torch.ones(64, 64)
    return float((x @ x).sum()), torch.get_num_threads()
"""
    result = run_code(code, handlers={}, limits=LIMITS)
    assert result.ok, result.report()
    assert result.return_value == (64.0**3, 4)


@needs_full
def test_isolation_line_names_every_layer() -> None:
    for words in ("namespaces pid, net", "read-only except the work directory", "own /proc", "no capabilities",
                  "seccomp (refuses sockets", "memory per run", "dies with the agent"):  # fmt: skip
        assert words in ISOLATION, (words, ISOLATION)
    assert "not dumpable" in ISOLATION and "work directory quota" in ISOLATION and "memfd" in ISOLATION
    if os.geteuid() == 0:  # a fresh uid of the run's own, not nobody (shared with the host)
        uid = int(ISOLATION.split("uid ", 1)[1].split(",")[0])
        assert uid in isolation.FRESH_UIDS, ISOLATION


@needs_full
@pytest.mark.skipif(not LINUX or os.geteuid() != 0, reason="a fresh uid is used when AIM is root")
def test_a_private_directory_shows_the_fresh_uid_only_what_it_must_read(tmp_path) -> None:
    private = tempfile.mkdtemp(prefix="aim-private-")  # 0700, root's: like /root holding a pyenv Python
    try:
        os.makedirs(os.path.join(private, "lib", "pkg"))
        with open(os.path.join(private, "lib", "pkg", "mod.py"), "w") as f:
            f.write("VALUE = 7\n")
        with open(os.path.join(private, "secret.txt"), "w") as f:
            f.write("key")
        code = f"""
import os, sys
def run_experiment():
    sys.path.insert(0, {os.path.join(private, "lib")!r})
    import pkg.mod
    secret = os.path.exists({os.path.join(private, "secret.txt")!r})
    return os.getuid(), sorted(os.listdir({private!r})), secret, pkg.mod.VALUE
"""
        limits = LIMITS.model_copy(update={"read_paths": (os.path.join(private, "lib"),), "landlock": False})
        result = run_code(code, handlers={}, limits=limits)
        assert result.ok, result.report()
        uid, *rest = result.return_value
        assert uid in isolation.FRESH_UIDS and rest == [["lib"], False, 7]  # Landlock is off: the mount view alone
        assert sorted(os.listdir(private)) == ["lib", "secret.txt"]  # the agent's view is untouched
    finally:
        subprocess.run(["rm", "-rf", private], check=False)


def test_code_does_not_run_without_any_isolation_layer() -> None:
    bare = LIMITS.model_copy(update={"namespaces": False, "seccomp": False})
    # "would run as root" where no unprivileged uid can read Python (it lives under /root) without a mount namespace
    with pytest.raises(SandboxUnavailable, match=r"(no isolation layer.*seccomp|would run as root).*--unsafe-sandbox"):
        run_code("def run_experiment():\n    return 1\n", handlers={}, limits=bare)
    result = run_code(
        "def run_experiment():\n    return 1\n", handlers={}, limits=bare.model_copy(update={"allow_unsafe": True})
    )
    assert result.ok and result.return_value == 1
    assert "not in force" in result.isolation and "seccomp: not requested" in result.isolation


def test_stale_work_dirs_of_dead_agents_are_removed() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tempfile.mkdtemp(prefix=f"aim-sandbox-{dead.pid}-")
    os.makedirs(os.path.join(stale, "locked", "deep"))
    os.chmod(os.path.join(stale, "locked"), 0o500)
    alive = tempfile.mkdtemp(prefix=f"aim-sandbox-{os.getppid()}-")
    old_style = os.path.join(tempfile.gettempdir(), f"aim-sandbox-{dead.pid}")  # mkdtemp's name: no pid
    os.mkdir(old_style)
    try:
        removed = clean_stale_workdirs()
        assert stale in removed and not os.path.exists(stale)
        assert os.path.isdir(alive) and os.path.isdir(old_style)
    finally:
        for path in (alive, old_style):
            os.rmdir(path)


# ---------------------------------------------------------------- the user namespace path (AIM not root)

AS_USER = """
import ctypes, json, os, sys
from aim_agent.agent.sandbox import SandboxLimits, run_code
code = '''
import os, socket, subprocess
def attempt(fn):
    try:
        return "done: %s" % (fn(),)
    except OSError as exc:
        return "blocked: " + type(exc).__name__
def run_experiment():
    caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm", "CapBnd"))]
    return {
        "socket": attempt(lambda: socket.socket()),
        "exec": attempt(lambda: subprocess.run(["/bin/true"])),
        "caps": caps, "uid": os.getuid(), "pid": os.getpid(),
        "write_outside": attempt(lambda: open("/var/tmp/aim-userns-escape", "w")),
    }
'''
result = run_code(code, handlers={}, limits=SandboxLimits(wall_time_s=30, landlock=False))
print(json.dumps({"ok": result.ok, "value": result.return_value, "isolation": result.isolation,
                  "report": result.report(), "euid": os.geteuid()}))
"""


def _run_as_unprivileged_user(script: str) -> dict | None:
    """Run ``script`` as uid 1000 of a new user namespace (uid 0 outside, no capability outside it).

    Its JSON output, or None where user namespaces are not available.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child, which only unshares and execs
        try:
            os.close(ready_r)
            os.close(go_w)
            os.close(out_r)
            os.write(ready_w, b"1" if libc.unshare(0x10000000) == 0 else b"0")  # CLONE_NEWUSER
            if os.read(go_r, 1) == b"1":
                os.dup2(out_w, 1)
                os.execv(sys.executable, [sys.executable, "-c", script])
        finally:
            os._exit(127)
    for fd in (ready_w, go_r, out_w):
        os.close(fd)
    chunks = []
    try:
        unshared = os.read(ready_r, 1) == b"1"
        if unshared:  # we are root outside: any mapping goes; uid 1000 inside is uid 0 outside
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{child}/{name}", "w") as f:
                    f.write("1000 0 1")
        os.write(go_w, b"1" if unshared else b"0")
        while chunk := os.read(out_r, 1 << 16):
            chunks.append(chunk)
    finally:
        for fd in (ready_r, go_w, out_r):
            os.close(fd)
        os.waitpid(child, 0)
    return json.loads(b"".join(chunks)) if unshared else None


@pytest.mark.skipif(not LINUX or os.geteuid() != 0, reason="making an unprivileged user for the test needs root")
def test_as_an_unprivileged_user_the_sandbox_uses_a_user_namespace() -> None:
    result = _run_as_unprivileged_user(AS_USER)
    if result is None:
        pytest.skip("user namespaces are not available here")
    assert result["euid"] == 1000 and result["ok"], result["report"]
    value = result["value"]
    assert "namespaces user, pid, net" in result["isolation"], result["isolation"]
    assert value["socket"].startswith("blocked") and value["exec"].startswith("blocked")
    assert value["write_outside"].startswith("blocked")  # the read-only mount, without Landlock
    assert value["caps"] == ["0000000000000000"] * 3 and value["uid"] == 1000 and value["pid"] == 2


# ---------------------------------------------------------------- the BPF program, instruction by instruction


def _evaluate(program: list[tuple[int, int, int, int]], arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """A classic-BPF interpreter for the instructions the filter uses: the action for one system call."""
    data = {0: nr, 4: arch}
    for i, value in enumerate((*args, 0, 0, 0, 0, 0, 0)[:6]):
        data[16 + 8 * i] = value & 0xFFFFFFFF
        data[20 + 8 * i] = (value >> 32) & 0xFFFFFFFF
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x20:
            acc = data[k]
        elif code == 0x54:
            acc &= k
        elif code == 0x06:
            return k
        elif code in (0x15, 0x25, 0x35, 0x45):
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")


@pytest.mark.parametrize("arch_name", ["x86_64", "aarch64"])
def test_seccomp_program_decides_as_documented(arch_name: str) -> None:
    arch = seccomp._ARCHES[arch_name]
    n = arch.numbers
    allow, eperm, enosys = seccomp._RET_ALLOW, seccomp.EPERM, seccomp.ENOSYS
    for allow_fork in (False, True):
        prog = seccomp.program(arch, allow_fork=allow_fork)
        assert len(prog) < 4096 and prog[-1] == (0x06, 0, 0, allow)

        def run(name: str | int, *args: int, audit: int = arch.audit, prog=prog) -> int:
            return _evaluate(prog, audit, n[name] if isinstance(name, str) else name, args)

        thread_flags = 0x003D0F00  # glibc's pthread_create: CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|...
        assert run("clone", thread_flags) == allow
        assert run("clone", 0x01200011) == (allow if allow_fork else eperm)  # fork(): CHILD_SETTID|CLEARTID|SIGCHLD
        assert run("clone", 0x00004111) == (allow if allow_fork else eperm)  # vfork: CLONE_VM|CLONE_VFORK|SIGCHLD
        assert run("clone", thread_flags | 0x10000000) == eperm  # a thread in a new user namespace
        assert run("clone3") == enosys and run(seccomp.LAST_KNOWN + 1) == enosys
        denied = ("socket", "execve", "execveat", "keyctl", "add_key", "ptrace", "mount", "unshare", "bpf")
        denied += ("io_uring_setup", "fchownat", "setxattr", "setuid", "capset", "perf_event_open", "pidfd_getfd")
        for name in denied:
            assert run(name, 2, 1, 0) == eperm, name
        assert run("socketpair", 1, 1 | 0o2000000) == allow  # AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC
        assert run("socketpair", 1, 2) == eperm  # SOCK_DGRAM: could sendto a named socket
        assert run("prctl", 1, 0) == eperm and run("prctl", 15, 0) == allow  # PDEATHSIG refused, PR_SET_NAME fine
        assert run("ioctl", 0, 0x5412) == eperm and run("ioctl", 0, 0x5401) == allow  # TIOCSTI refused, TCGETS fine
        assert run("ioctl", 0, 0x5412 | 1 << 32) == eperm  # only the low word of the request matters
        assert run("clone", thread_flags, audit=0x40000003) == eperm  # i386 calls on x86_64: another ABI
        if arch.x32_bit is not None:
            assert run(arch.x32_bit | n["socket"]) == eperm and run(arch.x32_bit | 0) == eperm
            assert run("fork") == (allow if allow_fork else eperm)
        ordinary = {"x86_64": (0, 1, 257, 9, 202), "aarch64": (63, 64, 56, 222, 98)}  # read write openat mmap futex
        for number in ordinary[arch_name]:
            assert run(number) == allow, number


def test_unsafe_sandbox_flag_reaches_the_run_config(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from aim_agent.cli import build_parser
    from aim_agent.cli.interpret import build_config
    from aim_agent.config import config_from_args

    monkeypatch.chdir(tmp_path)  # no aim.toml of the developer's
    for flags, expected in (([], False), (["--unsafe-sandbox"], True)):
        args = build_parser().parse_args(["interpret", "--synthetic", "red", *flags])
        assert build_config(args, config_from_args(args)).unsafe_sandbox is expected
