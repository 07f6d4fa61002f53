"""Round three of hostile model code (issue 25): no root in any mode, no memory outside the cap.

Each test builds an attack that worked against main at 05e6429 and asserts it is now blocked
or refused with a message that says what the machine lacks. Degraded mode (no namespaces) is
made on purpose with ``namespaces=False``; where Python itself is readable by every user, a
private ``read_paths`` entry stands in for a Python installed under ``/root``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_sandbox_attacks import HAS_NAMESPACES, HAS_SECCOMP, ISOLATION, LIMITS, ROOT, attack, attack_all, blocked

from aim_agent.agent.sandbox import SandboxUnavailable, isolation, run_code, seccomp

needs_root = pytest.mark.skipif(not ROOT, reason="AIM runs as root only where the sandbox must drop root")
needs_seccomp = pytest.mark.skipif(not HAS_SECCOMP, reason="no seccomp on this machine")
needs_namespaces = pytest.mark.skipif(not HAS_NAMESPACES, reason="no PID/network/mount namespaces on this machine")
needs_isolation = pytest.mark.skipif(not ISOLATION, reason="the sandbox has no isolation layer on this machine")


@pytest.fixture()
def private_dir():
    """A 0700 directory of root's holding a module: what a pyenv Python under /root looks like to other uids."""
    path = tempfile.mkdtemp(prefix="aim-private-")
    os.makedirs(os.path.join(path, "lib", "pkg"))
    Path(path, "lib", "pkg", "__init__.py").write_text("VALUE = 7\n")
    yield Path(path)
    subprocess.run(["rm", "-rf", path], check=False)


@pytest.fixture()
def root_file():
    """A root-owned file in a directory anyone may enter: the target of chmod 04777 / utime."""
    folder = tempfile.mkdtemp(prefix="aim-security-")
    os.chmod(folder, 0o755)
    target = Path(folder, "precious")
    target.write_text("keep")
    target.chmod(0o666)  # anyone may write it: utime(path, NULL) needs nothing more
    yield target
    subprocess.run(["rm", "-rf", folder], check=False)


def _degraded(private_dir: Path, **more) -> dict:
    """Limits of a machine without namespaces, on which no unprivileged uid can read what Python needs."""
    return {"namespaces": False, "read_paths": (str(private_dir / "lib"),), **more}


# ---------------------------------------------------------------- no root in any mode


@needs_root
@needs_seccomp
def test_degraded_mode_refuses_instead_of_keeping_root(private_dir: Path) -> None:
    """Main ran the code as uid 0 here ("uid 0 kept") and went ahead."""
    code = "import os\ndef run_experiment():\n    return os.getuid()\n"
    with pytest.raises(SandboxUnavailable, match=r"would run as root.*cannot read.*--unsafe-sandbox") as info:
        run_code(code, handlers={}, limits=LIMITS.model_copy(update=_degraded(private_dir)))
    assert str(private_dir) in str(info.value)  # it names what no other uid can read


@needs_root
@needs_seccomp
def test_unsafe_degraded_mode_cannot_change_metadata_outside(private_dir: Path, root_file: Path) -> None:
    """With --unsafe-sandbox the code keeps uid 0: seccomp still refuses chmod/utime/xattrs on every path."""
    before = root_file.stat()
    path = str(root_file)
    outcomes = attack_all(
        {
            "chmod_suid": f"os.chmod({path!r}, 0o4777)",
            "fchmod": f"os.fchmod(os.open({path!r}, os.O_RDONLY), 0o4777)",
            "chmod_at": f"os.chmod({os.path.basename(path)!r}, 0o4777, dir_fd=os.open({str(root_file.parent)!r}, 0))",
            "utime_now": f"os.utime({path!r})",
            "utime_past": f"os.utime({path!r}, (0, 0))",
            "futime": f"os.utime(os.open({path!r}, os.O_RDONLY), (0, 0))",
            "setxattr": f"os.setxattr({path!r}, 'user.aim', b'x')",
            "chown": f"os.chown({path!r}, 0, 0)",
        },
        _degraded(private_dir, allow_unsafe=True, landlock=False),
    )
    blocked(outcomes)
    line = run_code("def run_experiment():\n    return 1\n", handlers={},
                    limits=LIMITS.model_copy(update=_degraded(private_dir, allow_unsafe=True))).isolation
    assert line.startswith("mode unsafe: uid 0 kept;") and "chmod, utime" in line, line
    after = root_file.stat()
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    with contextlib.suppress(OSError):
        assert os.listxattr(root_file) == []


@needs_root
@needs_isolation
def test_code_runs_as_a_fresh_uid_not_shared_with_the_host() -> None:
    """Main used uid 65534: any `nobody` process could rewrite the work dir and signal the worker."""
    result = attack("""
        st = os.stat(".")
        return os.getuid(), os.getgid(), os.getgroups(), st.st_uid, st.st_mode & 0o777
    """)
    assert result.ok, result.report()
    uid, gid, groups, owner, mode = result.return_value
    assert uid in isolation.FRESH_UIDS and gid == uid and groups == [] and owner == uid, result.return_value
    assert uid != isolation.NOBODY and mode & 0o077 == 0  # the work dir is the run's alone
    accounts = {int(line.split(":")[2]) for line in Path("/etc/passwd").read_text().splitlines() if line.count(":") > 2}
    assert uid not in accounts
    second = attack("return os.getuid()")
    assert second.ok and second.return_value != uid  # each run draws its own


def test_fresh_uid_skips_ids_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([5, 5, 9])
    monkeypatch.setattr(isolation.os, "urandom", lambda n: next(draws).to_bytes(n, "little"))
    monkeypatch.setattr(isolation, "_ids_in_use", lambda: {isolation.FRESH_UIDS.start + 5})
    assert isolation.fresh_uid() == isolation.FRESH_UIDS.start + 9


@needs_isolation
def test_the_worker_is_not_dumpable() -> None:
    """Main set PR_SET_DUMPABLE=1: its uid could ptrace it or read /proc/<pid>/mem."""
    result = attack("return ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)")  # PR_GET_DUMPABLE
    assert result.ok, result.report()
    assert result.return_value == 0
    assert "not dumpable" in result.isolation


# ---------------------------------------------------------------- memory outside the cap, the work dir's size


MEMFD = """
fds = []
try:
    for _ in range(6):
        fd = os.memfd_create("hoard")
        os.write(fd, b"x" * (64 * 2**20))  # pages RLIMIT_AS never sees
        fds.append(fd)
except OSError as exc:
    return f"blocked: {type(exc).__name__} {errno.errorcode.get(exc.errno)} after {len(fds)}"
return f"held {len(fds) * 64} MiB"
"""


@needs_seccomp
@pytest.mark.parametrize(
    "layers", [pytest.param({}, id="all-layers"), pytest.param({"namespaces": False, "allow_unsafe": True,
                                                                "landlock": False}, id="seccomp-only")]
)
def test_memfd_memory_outside_the_cap_is_refused(layers: dict) -> None:
    result = attack(MEMFD, layers, memory_bytes=512 * 2**20)
    assert result.ok, result.report()
    assert result.return_value == "blocked: PermissionError EPERM after 0", result.return_value
    assert "memfd" in result.isolation


@needs_namespaces
def test_the_work_dir_has_a_quota() -> None:
    """Main let one run write 2 GB into its work dir (on a tmpfs /tmp: memory outside every limit)."""
    result = attack(
        """
        written = 0
        try:
            for i in range(8):
                with open(f"fill{i}", "wb") as f:
                    for _ in range(4):
                        f.write(b"x" * (4 * 2**20))
                        f.flush()
                        written += 4
        except OSError as exc:
            return f"stopped: {errno.errorcode.get(exc.errno)} at {written} MiB"
        return f"wrote {written} MiB"
        """,
        workdir_bytes=32 * 2**20,
        file_size_bytes=64 * 2**20,
    )
    assert result.ok, result.report()
    assert result.return_value.startswith("stopped: ENOSPC"), result.return_value
    assert int(result.return_value.split(" at ")[1].split()[0]) <= 32
    assert "work directory quota 32 MiB" in result.isolation


@pytest.mark.parametrize("arch_name", ["x86_64", "aarch64"])
def test_seccomp_program_refuses_memfd_always_and_metadata_when_asked(arch_name: str) -> None:
    from test_sandbox_layers import _evaluate

    arch = seccomp._ARCHES[arch_name]
    n = arch.numbers
    for deny_metadata in (False, True):
        prog = seccomp.program(arch, allow_fork=False, deny_metadata=deny_metadata)
        for name in ("memfd_create", "memfd_secret"):
            assert _evaluate(prog, arch.audit, n[name]) == seccomp.EPERM, name
        for name in seccomp.METADATA:
            if name in n:
                expected = seccomp.EPERM if deny_metadata else seccomp._RET_ALLOW
                assert _evaluate(prog, arch.audit, n[name]) == expected, (name, deny_metadata)


@needs_namespaces
@needs_seccomp
def test_the_isolation_line_starts_with_the_mode() -> None:
    assert ISOLATION.startswith("mode full; separate process"), ISOLATION


@needs_seccomp
def test_without_a_mount_namespace_the_agent_enforces_the_work_dir_quota() -> None:
    """No tmpfs can be mounted there: the agent measures the work directory and stops the run past its quota."""
    result = attack(
        """
        for i in range(4):
            with open(f"fill{i}", "wb") as f:
                f.write(b"x" * (16 * 2**20))
        time.sleep(3)  # the agent measures while the code runs; a generous window, not a timing assumption
        return "kept running"
        """,
        {"namespaces": False, "allow_unsafe": True},
        workdir_bytes=16 * 2**20,
        file_size_bytes=32 * 2**20,
    )
    assert not result.ok and result.kind == "killed", result.report()
    assert "over the quota of 16 MiB" in (result.error or "")
    quick = attack("open('f', 'wb').write(b'x' * 2**20)\nreturn 1", {"namespaces": False, "allow_unsafe": True},
                   workdir_bytes=16 * 2**20)
    assert quick.ok and quick.return_value == 1  # under the quota nothing changes
