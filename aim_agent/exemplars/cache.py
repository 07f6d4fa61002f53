"""Where exemplar results and checkpoints live, and how they are written safely.

A result is one safetensors file (tensors plus a JSON header under ``aim``) at
``CACHE/exemplars/<model>/<layer>-<key>.safetensors``; its running checkpoint sits beside it
as ``...partial.safetensors``. The key hashes the probe fingerprint (weights, layer,
preprocessing), the dataset fingerprint (file list, sizes, mtimes) and every setting that
changes the numbers (reduce, quantile, quantile budget). Every write goes to a temporary
file in the same folder, is flushed to disk, then renamed over the target (``os.replace``),
so a crash or ``kill -9`` leaves either the old file or the new one, never half of one
(:mod:`aim_agent.files`; the temporary files of a killed writer are removed by the next write).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from aim_agent.files import atomic_write

FORMAT_VERSION = 1
META_KEY = "aim"


def cache_key(**parts: Any) -> str:
    """A short stable hash of JSON-able parts."""
    text = json.dumps({"version": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[-80:] or "model"


def result_path(cache_dir: Path, model_name: str, layer: str, key: str) -> Path:
    return Path(cache_dir) / "exemplars" / _safe(model_name) / f"{_safe(layer)}-{key}.safetensors"


def checkpoint_path(result: Path) -> Path:
    return result.with_name(result.name.replace(".safetensors", ".partial.safetensors"))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Tensors and a JSON header in one safetensors file, written atomically."""
    data = st_save({k: v.contiguous() for k, v in tensors.items()}, metadata={META_KEY: json.dumps(meta)})
    atomic_write(path, data)


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """What :func:`save_tensors` wrote, or None when the file is missing or unreadable."""
    try:
        data = Path(path).read_bytes()
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get(META_KEY, "{}"))
    except Exception:  # missing, truncated by a crash before the rename, or from another version
        return None
    return tensors, meta
