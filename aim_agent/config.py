"""Which providers and plugins AIM uses: command-line flags > environment > ``aim.toml`` > defaults.

The file is TOML, found (first hit wins) at ``$AIM_CONFIG``, ``./aim.toml`` (or in a parent
directory up to the project root, the first one holding ``.git`` or ``pyproject.toml``), then
``$XDG_CONFIG_HOME/aim/aim.toml`` (``~/.config/aim/aim.toml``)::

    plugins = ["my_package.aim_plugin"]   # extra plugin modules, as with --plugin
    image_size = 224
    seed = 0

    [providers]
    text2image = "world"        # or "sd15", "sdxl", "diffusers" (plugin aim_diffusers)
    editor = "world"            # or "instruct-pix2pix", "flux-kontext"
    describer = "world"

    [diffusers]                 # a plugin's own section, read with AimConfig.setting()
    device = "auto"
    models = { sd15 = "/models/stable-diffusion-v1-5" }

    [models]                    # models the operator offers MCP clients and trusts to load
    allowed = ["/models/dino-vits8", "/models/net.pt", "my_pkg.nets:build", "/saes/layer4"]

    [models.named]              # a client says model="dino"; relative paths are from this file
    dino = "/models/dino-vits8"
    mynet = "my_pkg.nets:build"

Environment: ``AIM_TEXT2IMAGE``, ``AIM_EDITOR``, ``AIM_DESCRIBER``, ``AIM_PLUGINS`` (comma
separated), ``AIM_IMAGE_SIZE``, ``AIM_SEED``, ``AIM_RUNS_DIR``, ``AIM_EXEMPLAR_DATASET``; a plugin
setting ``[section] key`` is overridden by ``AIM_SECTION_KEY`` (``AIM_DIFFUSERS_DEVICE``).
Every value remembers where it came from (:attr:`AimConfig.sources`), so ``aim plugins`` can
say why a provider is active. ``[models]`` is read from the file only (no environment
variable can trust a model): see :mod:`aim_agent.models.trust`.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROVIDER_FIELDS = ("text2image", "editor", "describer")


class Settings(BaseModel):
    """What a person sets once for every command: the one place AIM's shared defaults live.

    :class:`AimConfig` is these settings as resolved from flags, environment and ``aim.toml``;
    a run's :class:`~aim_agent.agent.config.RunConfig` extends them with the unit and budgets;
    a :class:`~aim_agent.tools.base.ToolContext` starts from them.
    """

    model_config = ConfigDict(extra="forbid")

    text2image: str | None = Field(default="world", description="text-to-image provider; None: none")
    editor: str | None = Field(default="world", description="image editor provider; None: none")
    describer: str | None = Field(
        default="world", description="describer provider name, or a VLM backend provider:model; None: none"
    )
    plugins: list[str] = Field(default_factory=list, description="extra plugin modules to load")
    image_size: int = Field(default=224, ge=32, le=2048, description="side of generated images, pixels")
    seed: int = Field(default=0, description="random seed of generators and editors")
    runs_dir: str = Field(default="runs", description="where runs are written")
    exemplar_dataset: str | None = Field(
        default=None, description="exemplar dataset (image folder or dataset name); None: the default one"
    )


#: the defaults, read from :class:`Settings` (never written out again elsewhere)
DEFAULTS: dict[str, Any] = Settings().model_dump()
ENV = {
    "text2image": "AIM_TEXT2IMAGE",
    "editor": "AIM_EDITOR",
    "describer": "AIM_DESCRIBER",
    "plugins": "AIM_PLUGINS",
    "image_size": "AIM_IMAGE_SIZE",
    "seed": "AIM_SEED",
    "runs_dir": "AIM_RUNS_DIR",
    "exemplar_dataset": "AIM_EXEMPLAR_DATASET",
}
_TOP_LEVEL = {"plugins", "image_size", "seed", "runs_dir", "exemplar_dataset"}
_INT_FIELDS = {"image_size", "seed"}


class ConfigError(ValueError):
    """The configuration cannot be read; the message names the file or variable and the fix."""


class AimConfig(Settings):
    """Resolved configuration: the :class:`Settings`, plus what the file says beyond them.

    ``sources[field]`` says where each value came from.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    #: model specs MCP clients may load, trusted to run code as they load (``[models] allowed``)
    allowed_models: list[str] = Field(default_factory=list)
    #: names MCP clients may use for specs (``[models.named]``), trusted like ``allowed_models``
    named_models: dict[str, str] = Field(default_factory=dict)
    file: Path | None = None
    sections: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sources: dict[str, str] = Field(default_factory=dict)
    env: Mapping[str, str] = Field(default_factory=dict, repr=False)

    def provider(self, kind: str) -> str | None:
        """The configured provider name of ``kind`` (text2image, editor, describer); None: disabled."""
        if kind not in PROVIDER_FIELDS:
            raise ValueError(f"unknown provider kind {kind!r}; valid: {', '.join(PROVIDER_FIELDS)}")
        name: str | None = getattr(self, kind)
        return name

    def setting(self, section: str, key: str, default: Any = None) -> Any:
        """A plugin's setting: ``AIM_<SECTION>_<KEY>`` in the environment, else ``[section] key`` in the file."""
        env_name = f"AIM_{section}_{key}".upper().replace("-", "_")
        if env_name in self.env:
            return self.env[env_name]
        return self.sections.get(section, {}).get(key, default)

    def describe_source(self, name: str) -> str:
        return self.sources.get(name, "default")


def find_config_file(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    """The aim.toml that applies: $AIM_CONFIG, the project's aim.toml, or the user's; None when none exists."""
    env = os.environ if env is None else env
    explicit = env.get("AIM_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"AIM_CONFIG points to {path}, which is not a file; unset it or create the file")
        return path
    here = (cwd or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "aim.toml"
        if candidate.is_file():
            return candidate
        if (directory / ".git").exists() or (directory / "pyproject.toml").is_file():
            break
    base = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME", str(Path.home()))) / ".config")
    user = base / "aim" / "aim.toml"
    return user if user.is_file() else None


def _spec_in_file(path: Path, spec: str) -> str:
    """A model spec from aim.toml: a relative path that exists beside the file becomes absolute."""
    candidate = Path(spec).expanduser()
    if not candidate.is_absolute() and (path.parent / candidate).exists():
        return str((path.parent / candidate).resolve())
    return spec


def _read_models(path: Path, value: Any) -> dict[str, Any]:
    """``[models]``: ``allowed`` (a list of specs) and ``named`` (a table of name = spec)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [models] must be a table with 'allowed' and/or 'named'")
    unknown = set(value) - {"allowed", "named"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} in [models]; valid: allowed, named")
    allowed = value.get("allowed", [])
    if not isinstance(allowed, list) or not all(isinstance(v, str) and v.strip() for v in allowed):
        raise ConfigError(f"{path}: [models] allowed must be a list of model specs (strings)")
    named = value.get("named", {})
    if not isinstance(named, dict) or not all(isinstance(v, str) and v.strip() for v in named.values()):
        raise ConfigError(f"{path}: [models.named] must map names to model specs, e.g. dino = \"/models/dino\"")
    return {
        "allowed_models": [_spec_in_file(path, v.strip()) for v in allowed],
        "named_models": {str(k): _spec_in_file(path, v.strip()) for k, v in named.items()},
    }


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    values: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key == "providers":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [providers] must be a table")
            unknown = set(value) - set(PROVIDER_FIELDS)
            if unknown:
                raise ConfigError(
                    f"{path}: unknown key(s) {', '.join(sorted(unknown))} in [providers]; "
                    f"valid: {', '.join(PROVIDER_FIELDS)}"
                )
            values.update(value)
        elif key == "models":
            values.update(_read_models(path, value))
        elif key in _TOP_LEVEL:
            values[key] = value
        elif isinstance(value, dict):
            sections[key] = value
        else:
            raise ConfigError(
                f"{path}: unknown setting {key!r}; valid top-level keys: {', '.join(sorted(_TOP_LEVEL))}, "
                "a [providers] table, or a plugin's own [section]"
            )
    return values, sections


def _coerce(name: str, value: Any, where: str) -> Any:
    if name == "plugins":
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(f"{where}: plugins must be a list of module names (or a comma-separated string)")
    if name in _INT_FIELDS:
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {name} must be an integer, not {value!r}") from exc
    if name in PROVIDER_FIELDS:
        if value is None or value is False or (isinstance(value, str) and value.lower() in ("", "none", "off")):
            return None  # the primitive is switched off
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must be a provider name (a string), not {value!r}")
        return value
    return value


def load_config(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    file: Path | None = None,
) -> AimConfig:
    """Resolve the configuration: ``flags`` (None values ignored) > ``env`` > file > defaults.

    ``file`` forces a config file; otherwise :func:`find_config_file` looks for one. Plugin
    lists from several layers are joined (file, then environment, then flags), not replaced.
    """
    env = dict(os.environ if env is None else env)
    path = file if file is not None else find_config_file(env, cwd)
    file_values, sections = _read_file(path) if path is not None else ({}, {})

    values = dict(DEFAULTS)
    values["plugins"] = []
    values["allowed_models"], values["named_models"] = [], {}
    sources: dict[str, str] = {}
    for name, value in file_values.items():
        values[name] = _coerce(name, value, str(path))
        sources[name] = f"file {path}"
    plugins = list(values["plugins"])
    for name, var in ENV.items():
        if var in env and (env[var] != "" or name in PROVIDER_FIELDS):
            value = _coerce(name, env[var], f"environment variable {var}")
            if name == "plugins":
                plugins += value
            else:
                values[name] = value
            sources[name] = f"environment {var}"
    for name, value in (flags or {}).items():
        if name not in DEFAULTS:
            raise ValueError(f"unknown configuration flag {name!r}; valid: {', '.join(DEFAULTS)}")
        if value is None or (name == "plugins" and not value):
            continue
        value = _coerce(name, value, f"--{name.replace('_', '-')}")
        if name == "plugins":
            plugins += value
        else:
            values[name] = value
        sources[name] = "command line"
    values["plugins"] = list(dict.fromkeys(plugins))
    try:
        return AimConfig(**values, file=path, sections=sections, env=env, sources=sources)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))} (from {sources.get(str(e['loc'][0]), 'default')}): {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def add_provider_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--text2image/--editor/--describer`` (and ``--config``) to a command's parser."""
    group = parser.add_argument_group("providers (flags > environment > aim.toml > 'world')")
    group.add_argument("--text2image", metavar="NAME", help="text-to-image provider (env AIM_TEXT2IMAGE)")
    group.add_argument("--editor", metavar="NAME", help="image editor (env AIM_EDITOR)")
    group.add_argument("--describer", metavar="NAME", help="describer of highlighted regions (env AIM_DESCRIBER)")
    group.add_argument("--config", metavar="FILE", type=Path, help="read this aim.toml (env AIM_CONFIG)")


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--trust-model SPEC`` (repeatable): models that may run code as they load."""
    parser.add_argument(
        "--trust-model", action="append", default=[], metavar="SPEC",
        help="trust SPEC to run code as it loads: a torch.save pickle or TorchScript file, or "
        "'package.module:factory' (repeatable; see docs/security.md)",
    )


def cli_trust(args: argparse.Namespace, *specs: str | None) -> Any:
    """The trust scope of a command: the models its person named on the command line.

    ``specs`` are the models the command was given (``aim layers net.pt``); ``--trust-model``
    adds more. A context manager (:func:`aim_agent.models.trust.trusting`).
    """
    from aim_agent.models.trust import trusting

    return trusting(*specs, *(getattr(args, "trust_model", None) or []))


def config_from_args(args: argparse.Namespace) -> AimConfig:
    """The configuration for a command: its provider flags over environment, file and defaults."""
    flags = {name: getattr(args, name, None) for name in PROVIDER_FIELDS}
    return load_config(flags, file=getattr(args, "config", None))


def apply_plugins(config: AimConfig, manager: Any | None = None) -> list[str]:
    """Register the plugin modules named in the configuration (AIM_PLUGINS, aim.toml); returns them."""
    from aim_agent.plugins import plugin_manager

    manager = manager or plugin_manager()
    source = config.describe_source("plugins")
    for module in config.plugins:
        manager.add_module(module, source=source)
    return list(config.plugins)
