"""Session handles that outlive a connection: a small, bounded store on disk.

Some clients open a new MCP session for every call (langchain-mcp-adapters' default
``get_tools()``): over stdio each call then starts a new server process, and a unit loaded
in one call is gone in the next. So ``load_system`` and ``new_session`` return a handle, and
every call that passes it as ``session`` finds the same unit, experiment log and images, in
this process or a later one (same runs directory, same access rules).

What a handle is and what it gives:

- an unguessable token (``s_`` + 192 random bits); holding it is what gives access, as for
  a run id's owner. It is never written to disk: the store keeps each handle's state under
  ``sha256(scope, handle)``, where ``scope`` is the server's bearer token over HTTP (a handle
  minted under one token is unknown under another) and ``stdio`` for local servers;
- the state saved: the ``load_system`` arguments (the unit is loaded again, under the
  server's model policy, when a later process restores the handle), the experiment log's
  entries, and the images of calls that named the handle (PNG, at most ``max_images``; the
  oldest go first);
- bounds: a handle unused for ``ttl_s`` expires; the store keeps at most ``max_handles``
  (the least recently used go first: only holders of the same token share a store), and a
  log larger than ``MAX_LOG_BYTES`` is not saved (the call says so).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from aim_agent.files import atomic_write
from aim_agent.tools.base import ToolError

HANDLE = re.compile(r"^s_[A-Za-z0-9_-]{20,64}$")
MAX_LOG_BYTES = 8 * 1024**2
_STATE = "state.json"


def new_handle() -> str:
    return f"s_{secrets.token_urlsafe(24)}"


class HandleStore:
    """Saves and restores the state behind session handles (see the module doc)."""

    def __init__(
        self,
        root: Path,
        *,
        scope: str = "stdio",
        ttl_s: float = 24 * 3600.0,
        max_handles: int = 256,
        max_images: int = 512,
    ) -> None:
        self.root = Path(root)
        #: what handles are valid under: the HTTP bearer token's digest, or 'stdio'
        self.scope = scope
        self.ttl_s = ttl_s
        self.max_handles = max_handles
        self.max_images = max_images
        self._lock = threading.Lock()

    def owner_id(self, handle: str) -> str:
        """What the store (and a run's record) keeps instead of the handle itself."""
        return hashlib.sha256(f"{self.scope}\0{handle}".encode()).hexdigest()[:40]

    def dir(self, handle: str) -> Path:
        if not HANDLE.match(handle):
            raise ToolError(f"invalid session handle {handle[:80]!r}: handles come from load_system or new_session")
        return self.root / self.owner_id(handle)

    def image_dir(self, handle: str) -> Path:
        return self.dir(handle) / "images"

    # -- saving --------------------------------------------------------------------------------

    def save(self, handle: str, *, system: dict[str, Any] | bool | None = False,
             log: list[dict[str, Any]] | None = None, client: str | None = None) -> None:
        """Save what changed: the ``load_system`` arguments (``system``), the log's entries, the
        stateless client it was minted for (``client``: its expiry rules hold in a later process); touch."""
        folder = self.dir(handle)
        with self._lock:
            state = self._read(folder) or {"created": time.time(), "system": None, "log": []}
            if system is not False:
                state["system"] = system
            if log is not None:
                state["log"] = log
            if client is not None:
                state["client"] = client
            state["last_used"] = time.time()
            data = json.dumps(state).encode()
            if len(data) > MAX_LOG_BYTES:
                raise ToolError(
                    f"this session's experiment log is over {MAX_LOG_BYTES // 2**20} MB and is no longer saved for "
                    "later calls: load_system starts a new log"
                )
            new = not folder.exists()
            atomic_write(folder / _STATE, data, fsync=False)
            if new:
                self._prune()

    def prune_images(self, handle: str) -> None:
        """Keep the newest ``max_images`` images of a handle."""
        folder = self.image_dir(handle)
        pngs = sorted(folder.glob("img_*.png"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        pngs = [p for p in pngs if not p.name.endswith(".mask.png")]
        for path in pngs[: max(0, len(pngs) - self.max_images)]:
            # (records.jsonl keeps the record's line: a PNG saved again finds it; .json/.mask.png: older folders)
            for extra in (path, path.with_suffix(".json"), folder / f"{path.stem}.mask.png"):
                extra.unlink(missing_ok=True)

    def forget(self, handle: str) -> bool:
        """Remove a handle's saved state (close_session); whether there was any."""
        folder = self.dir(handle)
        with self._lock:
            known = (folder / _STATE).is_file()
            shutil.rmtree(folder, ignore_errors=True)
        return known

    # -- restoring -----------------------------------------------------------------------------

    def load(self, handle: str) -> dict[str, Any] | None:
        """The saved state of ``handle`` (``system``, ``log``), or None: unknown, or expired (then removed)."""
        folder = self.dir(handle)
        with self._lock:
            state = self._read(folder)
            if state is None:
                return None
            if time.time() - float(state.get("last_used", 0)) > self.ttl_s:
                shutil.rmtree(folder, ignore_errors=True)
                return None
            return state

    # -- bookkeeping (lock held) ---------------------------------------------------------------

    @staticmethod
    def _read(folder: Path) -> dict[str, Any] | None:
        try:
            state = json.loads((folder / _STATE).read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def _prune(self) -> None:
        """Drop expired handles, then the least recently used beyond ``max_handles``."""
        folders = [p for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []
        used: list[tuple[float, Path]] = []
        for folder in folders:
            with contextlib.suppress(OSError):
                used.append(((folder / _STATE).stat().st_mtime, folder))
        used.sort()
        now = time.time()
        for rank, (mtime, folder) in enumerate(used):
            if now - mtime > self.ttl_s or rank < len(used) - self.max_handles:
                shutil.rmtree(folder, ignore_errors=True)
