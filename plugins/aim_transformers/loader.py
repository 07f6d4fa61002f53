"""Load Hugging Face transformers vision models, offline, as AIM models.

A spec is either a local directory holding ``config.json`` and weights (what
``model.save_pretrained(dir)`` writes), or a Hugging Face id such as ``microsoft/resnet-152``,
``facebook/dino-vits8`` or ``openai/clip-vit-base-patch32`` that is already in the local
Hugging Face cache. Nothing is ever downloaded: loading always reads a directory with
``local_files_only=True`` (the ``HF_HUB_OFFLINE`` behaviour). Loading runs no code from the
directory: never ``trust_remote_code``, and ``.bin`` weights are read with
``torch.load(weights_only=True)``; safetensors are preferred when both exist.

Supported: ResNet (conv layers), ViT / DINO / DINOv2 / DeiT (token layers; the CLS token,
distillation and register tokens are dropped so the patch grid remains), CLIP (the vision
tower only, as ``CLIPVisionModel``) and other transformers vision backbones whose layers
give conv or token outputs. Preprocessing follows ``preprocessor_config.json`` when the
directory has one (see :func:`aim_agent.models.preprocess.from_hf_preprocessor`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from aim_agent.models.base import LoadedModel
from aim_agent.models.fingerprint import module_fingerprint
from aim_agent.models.preprocess import Preprocess, from_hf_preprocessor

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CLIP_TYPES = {"clip", "clip_vision_model"}
_SIGLIP_TYPES = {"siglip", "siglip_vision_model", "siglip2", "siglip2_vision_model"}
#: model types loaded and tested here (other vision backbones are tried the same way)
SUPPORTED_TYPES = ("resnet", "vit", "dinov2", "dinov2_with_registers", "deit", "clip", "clip_vision_model")


def hf_cache_dirs() -> list[Path]:
    """Where the Hugging Face hub cache may be, in the order the hub library itself looks."""
    found: list[Path] = []
    if os.environ.get("HF_HUB_CACHE"):
        found.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        found.append(Path(os.environ["HUGGINGFACE_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        found.append(Path(os.environ["HF_HOME"]) / "hub")
    if os.environ.get("TRANSFORMERS_CACHE"):
        found.append(Path(os.environ["TRANSFORMERS_CACHE"]))
    xdg = os.environ.get("XDG_CACHE_HOME")
    found.append((Path(xdg) if xdg else Path("~/.cache")).expanduser() / "huggingface" / "hub")
    unique: list[Path] = []
    for path in found:
        path = path.expanduser()
        if path not in unique:
            unique.append(path)
    return unique


def cached_snapshot(repo_id: str) -> Path | None:
    """The snapshot directory of ``repo_id`` in a local HF cache that has a config.json, or None."""
    folder = "models--" + repo_id.replace("/", "--")
    for cache in hf_cache_dirs():
        repo = cache / folder
        snapshots = repo / "snapshots"
        if not snapshots.is_dir():
            continue
        ref = repo / "refs" / "main"
        if ref.is_file():
            commit = ref.read_text().strip()
            if (snapshots / commit / "config.json").is_file():
                return snapshots / commit
        candidates = [s for s in snapshots.iterdir() if (s / "config.json").is_file()]
        if candidates:
            return max(candidates, key=lambda s: s.stat().st_mtime)
    return None


def _resolve(spec: str) -> Path | None:
    path = Path(spec).expanduser()
    if path.is_dir():
        return path if (path / "config.json").is_file() else None
    if _REPO_ID.match(spec):
        return cached_snapshot(spec)
    return None


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading reports and progress bars (AIM reports what matters)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def prefix_tokens_for(config: Any) -> int:
    """How many tokens come before the patch grid in this model's token layers."""
    model_type = getattr(config, "model_type", "")
    if model_type in _SIGLIP_TYPES:
        return 0
    if model_type == "deit":
        return 2  # CLS + distillation token
    return 1 + int(getattr(config, "num_register_tokens", 0) or 0)


def _labels(model: torch.nn.Module, config: Any) -> list[str] | None:
    if not type(model).__name__.endswith("ForImageClassification"):
        return None
    id2label = getattr(config, "id2label", None) or {}
    try:
        return [str(id2label[i]) for i in range(len(id2label))]
    except KeyError:
        return None


def _image_size(config: Any) -> int:
    vision = getattr(config, "vision_config", None) or config
    size = getattr(vision, "image_size", 224)
    return int(size[0] if isinstance(size, list | tuple) else size)


def loaded_from_hf(
    model: torch.nn.Module,
    *,
    name: str,
    preprocessor_config: dict[str, Any] | None = None,
    source: str = "",
) -> LoadedModel:
    """Wrap an in-memory transformers vision model (weights already set) as a LoadedModel."""
    model = model.eval()
    config = model.config
    preprocess = from_hf_preprocessor(preprocessor_config, default_size=_image_size(config))
    size = preprocess.output_size or (_image_size(config), _image_size(config))
    fingerprint = module_fingerprint(model, config.to_dict(), preprocess.describe())
    return LoadedModel(
        name=name,
        module=model,
        preprocess=preprocess,
        input_size=int(size[0]),
        fingerprint=fingerprint,
        run=_run_pixel_values,
        prefix_tokens=prefix_tokens_for(config),
        labels=_labels(model, config),
        source=source,
    )


def _run_pixel_values(module: torch.nn.Module, x: torch.Tensor) -> Any:
    return module(pixel_values=x)


class TransformersLoader:
    """Loads transformers vision models from a local directory or the local HF cache."""

    name = "transformers"

    def can_load(self, spec: str) -> bool:
        try:
            return _resolve(spec) is not None
        except Exception:
            return False

    def where_looked(self, spec: str) -> str:
        caches = ", ".join(str(c) for c in hf_cache_dirs())
        folder = "models--" + spec.replace("/", "--")
        return (
            f"a local directory {spec!r} with config.json; the Hugging Face cache ({caches}) under {folder}/snapshots. "
            f"To provide it: run `huggingface-cli download {spec}` (or `hf download {spec}`) on a machine with "
            "network and copy the cache here (set HF_HOME or HF_HUB_CACHE), or save the model with "
            "`model.save_pretrained(DIR)` and give DIR"
        )

    def load(self, spec: str) -> LoadedModel:
        from transformers import AutoConfig

        directory = _resolve(spec)
        if directory is None:
            raise FileNotFoundError(f"no transformers model at {spec!r}: looked in {self.where_looked(spec)}")
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
        model = self._load_module(directory, config)
        preproc_path = directory / "preprocessor_config.json"
        preproc = json.loads(preproc_path.read_text()) if preproc_path.is_file() else None
        return loaded_from_hf(model, name=spec, preprocessor_config=preproc, source=str(directory))

    def _load_module(self, directory: Path, config: Any) -> torch.nn.Module:
        import transformers

        model_type = getattr(config, "model_type", "")
        architectures = list(getattr(config, "architectures", None) or [])
        if model_type in _CLIP_TYPES:
            cls: Any = transformers.CLIPVisionModel
        elif model_type in _SIGLIP_TYPES:
            cls = transformers.SiglipVisionModel
        elif any(a.endswith("ForImageClassification") for a in architectures):
            cls = transformers.AutoModelForImageClassification
        elif model_type in SUPPORTED_TYPES or hasattr(config, "num_channels"):
            cls = transformers.AutoModel
        else:
            raise ValueError(
                f"{directory} holds a {model_type!r} model, which is not a vision model AIM can probe; "
                f"supported: {', '.join(SUPPORTED_TYPES)} (and other transformers vision backbones)"
            )
        # Weights missing from the checkpoint are initialised from a fixed seed, so two loads
        # of one directory give one model (and one fingerprint).
        with _quiet_transformers(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, info = cls.from_pretrained(
                directory, local_files_only=True, dtype=torch.float32, output_loading_info=True,
                trust_remote_code=False, weights_only=True,
            )
        missing = sorted(info.get("missing_keys") or [])
        if missing and all(k.startswith("pooler.") for k in missing) and getattr(model, "pooler", None) is not None:
            model.pooler = None  # DINO checkpoints have no pooler: drop it rather than keep random weights
        elif missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            warnings.warn(
                f"{directory}: {len(missing)} weights were not in the checkpoint and are random ({shown})",
                stacklevel=3,
            )
        return model.eval()


__all__ = ["SUPPORTED_TYPES", "Preprocess", "TransformersLoader", "cached_snapshot", "hf_cache_dirs", "loaded_from_hf"]
