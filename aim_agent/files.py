"""Writing files so that a crash never leaves half of one, and cleaning up after writers that died.

Every write goes to ``.<name>.<pid>.<random>.tmp`` in the target's folder, is flushed to disk,
then renamed over the target (``os.replace``): readers see the old file or the whole new one.
A writer killed with ``kill -9`` leaves its temporary file behind; a process's first write into the
same folder removes temporary files whose writer process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

_TEMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: Path) -> int:
    """Delete the temporary files of writers that died in ``folder``; how many were removed."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMP.match(entry.name)
            if match and entry.is_file(follow_symlinks=False) and not _alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


_CLEANED: set[str] = set()  # folders this process has already cleaned (a run writes thousands of images into one)


def atomic_write(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = str(path.parent.resolve())
    if folder not in _CLEANED:  # once per folder and process: a scan per write grows with the folder
        remove_stale_temps(path.parent)
        _CLEANED.add(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
