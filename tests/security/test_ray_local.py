"""A local Ray for ``aim sweep`` listens on loopback only, with a fresh token nobody else can read (issue 25).

Main's ``aim sweep --workers 2`` left the GCS, raylets, driver and workers listening on every
interface and the runtime-env agent on the machine's address; the token was ``~/.ray/auth_token``
(0644, reused by every cluster) and Ray's session folders were 0777.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import stat
from pathlib import Path

import pytest

from aim_agent.sweep.engine import new_local_ray_files

HOME_TOKEN = Path.home() / ".ray" / "auth_token"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_each_local_cluster_gets_a_fresh_private_token() -> None:
    first, second = new_local_ray_files(), new_local_ray_files()
    try:
        for files in (first, second):
            assert _mode(files.folder) == 0o700 and _mode(files.token_path) == 0o600
            assert files.token_path.parent == files.folder and len(files.token_path.read_text()) == 64
        assert first.token_path.read_text() != second.token_path.read_text()
    finally:
        for files in (first, second):
            files.token_path.unlink()
            files.folder.rmdir()


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in found]
        found.update(children)
        frontier.extend(children)
    return found


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that one of ``pids`` holds."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                    continue
                hexaddr, hexport = fields[1].split(":")
                raw = bytes.fromhex(hexaddr)
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # per 32-bit word, host order
                address = ipaddress.ip_address(raw) if width == 16 else ipaddress.ip_address(raw[:4])
                found.append((str(address), int(hexport, 16)))
    return found


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


@pytest.mark.skipif(not os.path.isdir("/proc/net"), reason="reads listening sockets from /proc (Linux)")
def test_a_local_sweep_cluster_listens_on_loopback_only_and_keeps_its_files_private() -> None:
    pytest.importorskip("ray")
    from aim_agent.sweep.engine import ray_session

    home_before = HOME_TOKEN.read_bytes() if HOME_TOKEN.exists() else None
    env_before = {k: os.environ.get(k) for k in ("RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
    try:
        session = ray_session(1)
        ray = session.__enter__()
    except Exception as exc:  # no shared memory, no sockets: a machine where Ray cannot run
        pytest.skip(f"Ray cannot start on this machine: {type(exc).__name__}: {exc}")
    try:
        from ray._raylet import AuthenticationMode, get_authentication_mode

        token_path = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
        folder = token_path.parent

        @ray.remote
        def pid() -> int:
            return os.getpid()

        worker = ray.get(pid.remote())  # a worker is up, so every kind of Ray process listens by now
        listening = _listening(_descendants(os.getpid()))
        assert worker in _descendants(os.getpid())
        assert len(listening) >= 4, listening  # GCS, raylet (2), driver, worker, runtime-env agent
        exposed = [(a, p) for a, p in listening if not _loopback(a)]
        assert not exposed, f"Ray listens beyond loopback: {exposed}"
        assert get_authentication_mode() == AuthenticationMode.TOKEN
        assert _mode(folder) == 0o700 and _mode(token_path) == 0o600
        session_dir = Path(ray._private.worker.global_worker.node.get_session_dir_path())
        assert folder in session_dir.parents  # Ray's 0777 session folders sit inside the 0700 one
        assert home_before is None or token_path.read_bytes() != home_before
    finally:
        session.__exit__(None, None, None)
    assert not folder.exists()
    assert {k: os.environ.get(k) for k in env_before} == env_before
    assert (HOME_TOKEN.read_bytes() if HOME_TOKEN.exists() else None) == home_before  # ~/.ray untouched
