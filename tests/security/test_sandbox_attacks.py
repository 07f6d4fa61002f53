"""Attacks of model-written code on the machine, each of which the sandbox must stop (issue 15).

Every test runs the attack inside the sandbox with the default limits and asserts that it
failed and left no trace; where a second layer stops the same attack on its own, a
parametrized case runs it with only that layer (``seccomp-only``: no namespaces and no
Landlock; ``namespaces-only``: no seccomp and no Landlock), so docs/security.md's table of
"attack -> layer" is checked, not claimed. Everything stays on loopback and ends in seconds.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from aim_testing import HANG_S

from aim_agent.agent.sandbox import SandboxLimits, run_code

LINUX = sys.platform.startswith("linux")
ROOT = LINUX and os.geteuid() == 0
PREAMBLE = "import ctypes, errno, os, socket, sys, time\n"
LIMITS = SandboxLimits(wall_time_s=20, cpu_time_s=20, memory_bytes=1024 * 2**20)


def _probe() -> str:
    """The isolation line of a trivial run ('' when the sandbox refuses to run here)."""
    if not LINUX:
        return ""
    try:
        result = run_code("def run_experiment():\n    return 1\n", handlers={}, limits=LIMITS)
    except RuntimeError:  # SandboxUnavailable
        return ""
    return result.isolation if result.ok else ""


ISOLATION = _probe()
HAS_NAMESPACES = "namespaces" in ISOLATION and "pid" in ISOLATION
HAS_SECCOMP = "seccomp (" in ISOLATION
needs_isolation = pytest.mark.skipif(not ISOLATION, reason="the sandbox has no isolation layer on this machine")
needs_namespaces = pytest.mark.skipif(not HAS_NAMESPACES, reason="no PID/network namespaces on this machine")
needs_seccomp = pytest.mark.skipif(not HAS_SECCOMP, reason="no seccomp on this machine")
needs_root = pytest.mark.skipif(not ROOT, reason="the attack needs a root agent to be meaningful")

ALL = pytest.param({}, id="all-layers", marks=needs_isolation)
# allow_unsafe: without namespaces a Python under /root is readable only by root, and the sandbox
# then refuses to run at all unless told to (test_sandbox_root.py); these cases test seccomp alone
SECCOMP_ONLY = pytest.param(
    {"namespaces": False, "landlock": False, "allow_unsafe": True}, id="seccomp-only", marks=needs_seccomp
)
NAMESPACES_ONLY = pytest.param({"seccomp": False, "landlock": False}, id="namespaces-only", marks=needs_namespaces)


def attack(body: str, layers: dict | None = None, **limits):
    """Run ``def run_experiment():`` + ``body`` in the sandbox; the result."""
    code = "def run_experiment():\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"
    return run_code(PREAMBLE + code, handlers={}, limits=LIMITS.model_copy(update={**(layers or {}), **limits}))


TRY = """
libc = ctypes.CDLL(None, use_errno=True)

def syscall(*args):
    value = libc.syscall(*args)
    if value < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return value

def attempt(fn):
    try:
        return f"done: {fn()}"
    except OSError as exc:
        return f"blocked: {type(exc).__name__} {errno.errorcode.get(exc.errno, exc.errno)}"
"""


def attack_all(attempts: dict[str, str], layers: dict | None = None, **limits) -> dict[str, str]:
    """Run several attempts (name -> expression) and return what each did: 'done: ...' or 'blocked: ...'."""
    lines = ["results = {}"] + [f"results[{k!r}] = attempt(lambda: {v})" for k, v in attempts.items()]
    code = TRY + "def run_experiment():\n" + textwrap.indent("\n".join([*lines, "return results"]), "    ")
    result = run_code(PREAMBLE + code, handlers={}, limits=LIMITS.model_copy(update={**(layers or {}), **limits}))
    assert result.ok, result.report()
    return result.return_value


def blocked(outcomes: dict[str, str]) -> None:
    escaped = {k: v for k, v in outcomes.items() if not v.startswith("blocked")}
    assert not escaped, f"attacks that worked: {escaped}"


def marked_processes(marker: str) -> list[int]:
    """Host pids of live processes whose environment carries ``marker`` (sandbox processes of one test)."""
    found = []
    for path in glob.glob("/proc/[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if marker.encode() in Path(path).read_bytes():
                pid = int(path.split("/")[2])
                with contextlib.suppress(OSError):  # zombies have left: only running processes count
                    if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(pid)
    return found


def wait_until_gone(marker: str, seconds: float = HANG_S) -> list[int]:
    """The processes still marked once none are left (at once, then), or after ``seconds`` (a hang)."""
    deadline = time.monotonic() + seconds
    while (left := marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture()
def marker():
    """A unique environment value for the sandbox's processes; any survivor is killed afterwards."""
    value = f"aim-test-{uuid.uuid4().hex}"
    yield value
    for pid in marked_processes(value):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture()
def open_dir():
    """A directory everyone may enter and write (as /tmp is): what the attacker can reach by path."""
    path = tempfile.mkdtemp(prefix="aim-security-")
    os.chmod(path, 0o777)
    yield Path(path)
    subprocess.run(["rm", "-rf", path], check=False)


# ---------------------------------------------------------------- network


@pytest.fixture()
def tcp_listener():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def assert_nothing_arrived(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        conn, _ = server.accept()
        conn.close()


@pytest.mark.parametrize("layers", [ALL, SECCOMP_ONLY, NAMESPACES_ONLY])
def test_mptcp_connect_to_loopback_is_blocked(tcp_listener: socket.socket, layers: dict) -> None:
    port = tcp_listener.getsockname()[1]
    outcomes = attack_all(
        {"mptcp": f"socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262).connect(('127.0.0.1', {port}))"},
        layers,
    )
    blocked(outcomes)
    assert_nothing_arrived(tcp_listener)


@pytest.mark.parametrize("layers", [ALL, SECCOMP_ONLY, NAMESPACES_ONLY])
def test_tcp_fast_open_to_loopback_is_blocked(tcp_listener: socket.socket, layers: dict) -> None:
    port = tcp_listener.getsockname()[1]
    outcomes = attack_all(
        {"fastopen": f"socket.socket().sendto(b'GET / HTTP/1.0\\r\\n\\r\\n', 0x20000000, ('127.0.0.1', {port}))"},
        layers,
    )
    blocked(outcomes)
    assert_nothing_arrived(tcp_listener)


@needs_root
@pytest.mark.parametrize("layers", [ALL, SECCOMP_ONLY, NAMESPACES_ONLY])
def test_packet_and_raw_sockets_are_blocked(layers: dict) -> None:
    outcomes = attack_all(
        {
            "af_packet": "socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).recv(65535)",
            "raw_icmp": "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)",
            "raw_tcp": "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)",
        },
        layers,
    )
    blocked(outcomes)


@pytest.mark.parametrize("layers", [ALL, SECCOMP_ONLY])
def test_named_unix_sockets_are_unreachable(open_dir: Path, layers: dict) -> None:
    stream_path, dgram_path = str(open_dir / "stream.sock"), str(open_dir / "dgram.sock")
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.bind(stream_path)
    stream.listen(4)
    stream.setblocking(False)
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(dgram_path)
    abstract_name = f"\0aim-test-{uuid.uuid4().hex}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(abstract_name)
    abstract.listen(4)
    abstract.setblocking(False)
    dgram.setblocking(False)
    for path in (stream_path, dgram_path):
        os.chmod(path, 0o777)  # so file permissions alone would let anyone in
    try:
        outcomes = attack_all(
            {
                "connect": f"socket.socket(socket.AF_UNIX).connect({stream_path!r})",
                "abstract": f"socket.socket(socket.AF_UNIX).connect({abstract_name!r})",
                "sendto": f"socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'x', {dgram_path!r})",
                # a datagram pair can send to any path: only stream pairs are allowed
                "pair_sendto": f"socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)[0].sendto(b'x', {dgram_path!r})",
            },
            layers,
        )
        blocked(outcomes)
        assert_nothing_arrived(stream)
        assert_nothing_arrived(abstract)
        with pytest.raises(BlockingIOError):
            dgram.recv(16)
    finally:
        for sock in (stream, dgram, abstract):
            sock.close()


# ---------------------------------------------------------------- processes


@pytest.mark.parametrize("layers", [ALL, pytest.param({"max_processes": 8}, id="fork-allowed", marks=needs_seccomp)])
def test_programs_cannot_be_started(layers: dict) -> None:
    outcomes = attack_all(
        {
            "subprocess": "__import__('subprocess').run(['/bin/sh', '-c', 'echo pwned > pwned.txt'])",
            # blocked when the file was never written (os.system only returns a status)
            "os_system": "(os.system('echo pwned > pwned.txt'), open('pwned.txt').read())",
            "popen": "os.popen('echo pwned').read() or open('no-output').read()",
            "execv": "os.execv('/bin/true', ['true'])",
        },
        layers,
    )
    blocked(outcomes)


SETSID_GRANDCHILD = """
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, b"x")
        time.sleep(60)
    os._exit(0)
os.waitpid(child, 0)
os.read(r, 1)
"""


@pytest.mark.parametrize("layers", [ALL, pytest.param({"max_processes": 8}, id="fork-allowed", marks=needs_namespaces)])
def test_setsid_grandchild_does_not_survive_the_run(marker: str, layers: dict) -> None:
    result = attack(SETSID_GRANDCHILD + "return 'spawned'", layers, extra_env={"AIM_TEST_MARKER": marker})
    if layers:  # fork allowed: the grandchild ran, and died with the PID namespace
        assert result.ok and result.return_value == "spawned", result.report()
    else:  # one process per run: fork itself is refused
        assert result.kind == "runtime_error" and "PermissionError" in result.error, result.report()
    assert wait_until_gone(marker) == []


@pytest.mark.parametrize("layers", [ALL, pytest.param({"max_processes": 8}, id="fork-allowed", marks=needs_namespaces)])
def test_timed_out_run_leaves_no_process(marker: str, layers: dict) -> None:
    spawn = "try:\n" + textwrap.indent(SETSID_GRANDCHILD, "    ") + "\nexcept OSError:\n    pass\n"
    body = spawn + "while True:\n    pass\n"
    result = attack(body, layers, wall_time_s=1.5, extra_env={"AIM_TEST_MARKER": marker})
    assert result.kind == "timeout", result.report()
    assert wait_until_gone(marker) == []


AGENT = """
import sys
from aim_agent.agent.sandbox import SandboxLimits, run_code
code = '''
import os, time
def run_experiment():
    open("running-" + os.environ["AIM_TEST_MARKER"], "w").close()
    time.sleep(60)
'''
# workdir_bytes=None: the work directory is the host's directory (not a tmpfs of the sandbox's own), so
# the test sees the file that says the code is running
limits = SandboxLimits(wall_time_s=60, cpu_time_s=60, workdir_bytes=None, extra_env={"AIM_TEST_MARKER": sys.argv[1]})
run_code(code, handlers={}, limits=limits)
"""


def test_killed_agent_takes_its_sandbox_along_and_its_work_dir_is_cleaned(marker: str) -> None:
    agent = subprocess.Popen([sys.executable, "-c", AGENT, marker], cwd=tempfile.gettempdir())
    try:
        deadline = time.monotonic() + HANG_S  # ends when the code starts; a loaded machine starts it slowly
        found: list[str] = []
        while not found and time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.05)
            found = glob.glob(os.path.join(tempfile.gettempdir(), f"aim-sandbox-*/running-{marker}"))
        assert found, "the sandboxed code never started"
        workdir = os.path.dirname(found[0])
        assert marked_processes(marker)
        agent.send_signal(signal.SIGKILL)
        agent.wait(HANG_S)
        assert wait_until_gone(marker) == [], "the sandbox outlived its agent"
        result = run_code("def run_experiment():\n    return 2\n", handlers={}, limits=LIMITS)  # the next run
        assert result.ok and result.return_value == 2
        assert not os.path.exists(workdir), "the stale work directory was not removed by the next run"
    finally:
        if agent.poll() is None:
            agent.kill()


# ---------------------------------------------------------------- privileges


@needs_root
@needs_isolation
def test_no_capabilities_and_not_root() -> None:
    outcomes = attack_all({"status": "open('/proc/self/status').read()", "uid": "os.getuid()"})
    status = dict(
        line.split(":", 1) for line in outcomes["status"].removeprefix("done: ").splitlines() if line.startswith("Cap")
    )
    assert {k: int(v, 16) for k, v in status.items()} == dict.fromkeys(
        ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), 0
    ), status
    assert outcomes["uid"] != "done: 0"


KEYCTL = {"x86_64": (248, 249, 250), "aarch64": (217, 218, 219)}


@pytest.mark.skipif(os.uname().machine not in KEYCTL, reason="keyring syscall numbers known for x86_64, aarch64")
@pytest.mark.parametrize("layers", [ALL, SECCOMP_ONLY])
def test_kernel_keyring_is_out_of_reach(layers: dict) -> None:
    add_key, request_key, keyctl = KEYCTL[os.uname().machine]
    attempts = {
        "session_keyring": f"syscall({keyctl}, 0, -3, 0)",  # KEYCTL_GET_KEYRING_ID of the session keyring
        "user_keyring": f"syscall({keyctl}, 0, -4, 0)",
        "add_key": f"syscall({add_key}, b'user', b'aim-test', b'secret', 6, -2)",
        "request_key": f"syscall({request_key}, b'user', b'aim-test', None, 0)",
    }
    if not layers:  # the names of every key the agent may view: Landlock hides the file
        attempts["proc_keys"] = "open('/proc/keys').read() or open('/proc/keys/empty').read()"
    blocked(attack_all(attempts, layers))


@needs_isolation
def test_metadata_of_files_outside_the_work_dir_cannot_change(open_dir: Path) -> None:
    target = open_dir / "precious.txt"
    target.write_text("keep")
    target.chmod(0o666)  # anyone may write it: utime and user xattrs need nothing more
    before = target.stat()
    outcomes = attack_all(
        {
            "chmod": f"os.chmod({str(target)!r}, 0o777)",
            "chown": f"os.chown({str(target)!r}, os.getuid(), os.getgid())",
            "utime_now": f"os.utime({str(target)!r})",
            "utime_past": f"os.utime({str(target)!r}, (0, 0))",
            "setxattr": f"os.setxattr({str(target)!r}, 'user.aim', b'x')",
            "write": f"open({str(target)!r}, 'a').write('x')",
            "rename": f"os.rename({str(target)!r}, {str(open_dir / 'moved')!r})",
            "create": f"open({str(open_dir / 'new.txt')!r}, 'w')",
        }
    )
    blocked(outcomes)
    after = target.stat()
    assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
        before.st_mtime_ns,
    )
    assert target.read_text() == "keep" and sorted(p.name for p in open_dir.iterdir()) == ["precious.txt"]
    with contextlib.suppress(OSError):  # a file system without xattrs has none to change
        assert os.listxattr(target) == []


# ---------------------------------------------------------------- memory


@needs_isolation
def test_memory_is_capped_per_run_not_per_process() -> None:
    # three forks of 1.5 GB each under a 2 GiB limit: together they must not get 4.5 GB
    body = """
    got = 0
    children = []
    for _ in range(3):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            try:
                block = bytearray(1536 * 2**20)
                os._exit(0)
            except MemoryError:
                os._exit(1)
        children.append(pid)
    for pid in children:
        got += os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    return got
    """
    result = attack(body, memory_bytes=2 * 2**30)
    allocated = 1.5 * (result.return_value if result.ok else 0)
    assert allocated <= 2, f"{allocated} GB allocated by one run under a 2 GiB limit: {result.report()}"
    assert "memory per run" in result.isolation


@needs_namespaces
def test_code_cannot_import_aim_or_read_plugin_data() -> None:
    """Ground truth stays out of reach: AIM's packages and the plugins' (synthetic neurons) are hidden."""
    import aim_world.neurons

    result = attack(f"""
        out = {{}}
        for name in ("aim_agent", "aim_world", "aim_world.neurons", "aim_agent.agent.sandbox"):
            try:
                __import__(name)
                out[name] = "imported"
            except ImportError as exc:
                out[name] = type(exc).__name__
        try:
            out["read"] = len(open({aim_world.neurons.__file__!r}).read())
        except OSError as exc:
            out["read"] = type(exc).__name__
        try:
            out["listing"] = os.listdir({os.path.dirname(aim_world.neurons.__file__)!r})
        except OSError as exc:
            out["listing"] = type(exc).__name__
        return out
    """)
    assert result.ok, result.report()
    found = result.return_value
    assert all(found[name] == "ModuleNotFoundError" for name in ("aim_agent", "aim_world", "aim_world.neurons"))
    assert found["read"] == "FileNotFoundError" and found["listing"] in ([], "PermissionError")
    assert "package directories hidden" in result.isolation
