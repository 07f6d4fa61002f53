"""diffusers pipelines as AIM providers: text-to-image (SD 1.5, SDXL, any) and editors (InstructPix2Pix, FLUX-Kontext).

Weights come from a local directory or the local Hugging Face cache only (``local_files_only``);
AIM never downloads. Which weights: ``[diffusers.<provider>] model = "/path/or/hf-id"`` in aim.toml,
or ``AIM_DIFFUSERS_<PROVIDER>_MODEL`` (``AIM_DIFFUSERS_SD15_MODEL``), else the provider's usual
Hugging Face id, looked up in the cache. Shared settings (``[diffusers]`` or ``AIM_DIFFUSERS_*``):
``device`` (auto: cuda, then mps, then cpu), ``steps``, ``guidance``, ``resolution`` (generation
size before resizing to the size asked for), ``batch_size``. Pipelines load on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from aim_agent.images import current_store
from aim_agent.providers import Edited, Generated, ProviderError


def pick_device(preference: str | None = "auto") -> str:
    """``auto``: cuda when available, else mps, else cpu; any other value is used as given."""
    import torch

    if preference and preference != "auto":
        return preference
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_weights(spec: str | Path, provider: str) -> Path:
    """A local directory for ``spec``: the path itself, or the cached snapshot of a Hugging Face id.

    Raises :class:`ProviderError` saying where it looked and how to provide the weights.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ProviderError(
                f"{path} is not a diffusers pipeline directory (no model_index.json); give the folder written by "
                "pipeline.save_pretrained() or a Hugging Face snapshot"
            )
        return path
    looked = [f"local path {path.resolve()} (does not exist)"]
    text = str(spec)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(text, local_files_only=True))
        except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
            looked.append(f"the Hugging Face cache {constants.HF_HUB_CACHE} (no snapshot of {text!r})")
    raise ProviderError(
        f"cannot find weights for the {provider} provider ({text!r}). Looked at: {'; '.join(looked)}. "
        "AIM never downloads: fetch them beforehand (`huggingface-cli download ID` on a machine with network, "
        f'then copy the cache), or point to a local folder with [diffusers.{provider}] model = "/path" in aim.toml '
        f"or {_env_name(provider, 'model')}=/path"
    )


def _env_name(provider: str, key: str) -> str:
    """The environment variable of one provider's setting: ``AIM_DIFFUSERS_<PROVIDER>_<KEY>``."""
    return f"AIM_DIFFUSERS_{provider}_{key}".upper().replace("-", "_")


def _setting(provider: str, key: str, default: Any) -> Any:
    """A setting, first found in: ``AIM_DIFFUSERS_<PROVIDER>_<KEY>``, ``[diffusers.<provider>] key``,
    ``AIM_DIFFUSERS_<KEY>``, ``[diffusers] key``."""
    from aim_agent.config import load_config

    config = load_config()
    env = _env_name(provider, key)
    if env in config.env:
        return config.env[env]
    own = config.sections.get("diffusers", {}).get(provider)
    if isinstance(own, dict) and key in own:
        return own[key]
    return config.setting("diffusers", key, default)


class _DiffusersProvider:
    """Shared by every diffusers provider: settings, lazy pipeline loading, seeding."""

    name: ClassVar[str] = "diffusers"
    pipeline_class: ClassVar[str] = "AutoPipelineForText2Image"
    default_model: ClassVar[str | None] = None
    default_resolution: ClassVar[int] = 512
    default_steps: ClassVar[int] = 25
    default_guidance: ClassVar[float] = 7.5

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        resolution: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.model = str(model) if model is not None else _setting(self.name, "model", self.default_model)
        self.device = pick_device(device or _setting(self.name, "device", "auto"))
        self.steps = int(steps or _setting(self.name, "steps", self.default_steps))
        self.guidance = float(guidance or _setting(self.name, "guidance", self.default_guidance))
        self.resolution = int(resolution or _setting(self.name, "resolution", self.default_resolution))
        self.batch_size = int(batch_size or _setting(self.name, "batch_size", 4))
        if self.resolution % 8:
            raise ProviderError(f"{self.name}: resolution must be a multiple of 8, not {self.resolution}")
        self._pipe: Any = None
        self._lock = threading.Lock()

    @property
    def pipe(self) -> Any:
        """The pipeline, loaded on first use (from a local folder or the cache, never the network)."""
        if self._pipe is None:
            if not self.model:
                raise ProviderError(
                    f'the {self.name} provider has no model: set [diffusers.{self.name}] model = "/path" in aim.toml '
                    f"or {_env_name(self.name, 'model')}"
                )
            import diffusers
            import torch

            cls = getattr(diffusers, self.pipeline_class, None)
            if cls is None:
                raise ProviderError(
                    f"diffusers {diffusers.__version__} has no {self.pipeline_class}; upgrade diffusers "
                    f"(pip install -U diffusers) to use the {self.name} provider"
                )
            path = resolve_weights(self.model, self.name)
            dtype = torch.float16 if self.device == "cuda" else torch.float32
            version = tuple(int(p) for p in diffusers.__version__.split(".")[:2] if p.isdigit())
            dtype_kw = "dtype" if version >= (0, 40) else "torch_dtype"  # torch_dtype is deprecated in 0.4x
            try:
                pipe = cls.from_pretrained(path, local_files_only=True, **{dtype_kw: dtype})
            except (OSError, ValueError) as exc:
                raise ProviderError(f"cannot load the {self.name} pipeline from {path}: {exc}") from exc
            pipe = pipe.to(self.device)
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe
        return self._pipe

    def _generators(self, seed: int, count: int) -> list[Any]:
        import torch

        device = "cpu" if self.device == "mps" else self.device
        return [torch.Generator(device=device).manual_seed(seed + i) for i in range(count)]


class DiffusersTextToImage(_DiffusersProvider):
    """Text-to-image with any diffusers pipeline (``AutoPipelineForText2Image``); needs a configured model."""

    name: ClassVar[str] = "diffusers"

    def _call(self, prompts: list[str], generators: list[Any]) -> list[Image.Image]:
        out = self.pipe(
            prompt=prompts,
            height=self.resolution,
            width=self.resolution,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=generators,
            output_type="pil",
        )
        return list(out.images)

    def generate(self, prompts: list[str], *, size: int = 224, seed: int = 0) -> list[Generated]:
        """One image per prompt at ``size`` x ``size`` (generated at ``resolution``, then resized)."""
        made: list[Generated] = []
        with self._lock:
            for start in range(0, len(prompts), self.batch_size):
                chunk = list(prompts[start : start + self.batch_size])
                images = self._call(chunk, self._generators(seed + start, len(chunk)))
                for prompt, image in zip(chunk, images, strict=True):
                    image = image.convert("RGB")
                    if image.size != (size, size):
                        image = image.resize((size, size), Image.Resampling.LANCZOS)
                    current_store().register(image, meta={"prompt": prompt, "provider": self.name, "model": self.model})
                    made.append(Generated(image=image, prompt=prompt))
        return made


class StableDiffusion15(DiffusersTextToImage):
    """Stable Diffusion 1.5 (``StableDiffusionPipeline``)."""

    name: ClassVar[str] = "sd15"
    pipeline_class: ClassVar[str] = "StableDiffusionPipeline"
    default_model: ClassVar[str | None] = "stable-diffusion-v1-5/stable-diffusion-v1-5"


class StableDiffusionXL(DiffusersTextToImage):
    """Stable Diffusion XL base (``StableDiffusionXLPipeline``)."""

    name: ClassVar[str] = "sdxl"
    pipeline_class: ClassVar[str] = "StableDiffusionXLPipeline"
    default_model: ClassVar[str | None] = "stabilityai/stable-diffusion-xl-base-1.0"
    default_resolution: ClassVar[int] = 1024
    default_guidance: ClassVar[float] = 5.0


class _DiffusersEditor(_DiffusersProvider):
    def _edit_batch(
        self, images: list[Image.Image], instructions: list[str], generators: list[Any]
    ) -> list[Image.Image]:
        raise NotImplementedError

    def edit(self, images: list[Image.Image], instructions: list[str], *, seed: int = 0) -> list[Edited]:
        """Apply ``instructions[i]`` to ``images[i]``; edited images keep the original's size."""
        if len(images) != len(instructions):
            raise ProviderError(f"{len(images)} images but {len(instructions)} instructions; they must pair up")
        done: list[Edited] = []
        with self._lock:
            for start in range(0, len(images), self.batch_size):
                originals = [
                    im if im.mode == "RGB" else im.convert("RGB") for im in images[start : start + self.batch_size]
                ]
                chunk = list(instructions[start : start + self.batch_size])
                inputs = [im.resize((self.resolution, self.resolution), Image.Resampling.LANCZOS) for im in originals]
                edited = self._edit_batch(inputs, chunk, self._generators(seed + start, len(chunk)))
                for original, result, instruction in zip(originals, edited, chunk, strict=True):
                    result = result.convert("RGB").resize(original.size, Image.Resampling.LANCZOS)
                    store = current_store()
                    store.register(
                        result, parent=store.ensure(original), meta={"instruction": instruction, "provider": self.name}
                    )
                    done.append(Edited(original=original, edited=result, instruction=instruction, applied=True))
        return done


class InstructPix2PixEditor(_DiffusersEditor):
    """InstructPix2Pix (``StableDiffusionInstructPix2PixPipeline``): follows edit instructions."""

    name: ClassVar[str] = "instruct-pix2pix"
    pipeline_class: ClassVar[str] = "StableDiffusionInstructPix2PixPipeline"
    default_model: ClassVar[str | None] = "timbrooks/instruct-pix2pix"
    default_steps: ClassVar[int] = 20
    image_guidance: ClassVar[float] = 1.5

    def _edit_batch(
        self, images: list[Image.Image], instructions: list[str], generators: list[Any]
    ) -> list[Image.Image]:
        out = self.pipe(
            prompt=instructions,
            image=images,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            image_guidance_scale=float(_setting(self.name, "image_guidance", self.image_guidance)),
            generator=generators,
            output_type="pil",
        )
        return list(out.images)


class FluxKontextEditor(_DiffusersEditor):
    """FLUX.1 Kontext (``FluxKontextPipeline``): instruction edits that keep the rest of the image."""

    name: ClassVar[str] = "flux-kontext"
    pipeline_class: ClassVar[str] = "FluxKontextPipeline"
    default_model: ClassVar[str | None] = "black-forest-labs/FLUX.1-Kontext-dev"
    default_resolution: ClassVar[int] = 1024
    default_steps: ClassVar[int] = 28
    default_guidance: ClassVar[float] = 2.5

    def _edit_batch(
        self, images: list[Image.Image], instructions: list[str], generators: list[Any]
    ) -> list[Image.Image]:
        results: list[Image.Image] = []
        for image, instruction, generator in zip(images, instructions, generators, strict=True):
            out = self.pipe(
                image=image,
                prompt=instruction,
                height=self.resolution,
                width=self.resolution,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                generator=generator,
                output_type="pil",
            )
            results.append(out.images[0])
        return results


TEXT_TO_IMAGE: Sequence[type[DiffusersTextToImage]] = (StableDiffusion15, StableDiffusionXL, DiffusersTextToImage)
EDITORS: Sequence[type[_DiffusersEditor]] = (InstructPix2PixEditor, FluxKontextEditor)
