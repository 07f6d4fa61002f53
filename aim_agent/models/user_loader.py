"""A user's own models: ``package.module:factory``, TorchScript files and ``torch.save``d modules.

``package.module:factory`` imports the module and calls ``factory()``. The factory returns
either a :class:`~aim_agent.models.base.LoadedModel` (full control over preprocessing) or a
plain ``torch.nn.Module``, which gets the ImageNet evaluation transform at ``input_size``
(default 224: resize the shortest edge to 256, centre crop 224, ImageNet mean/std).

A file ending in ``.pt``, ``.pth``, ``.ts`` or ``.torchscript`` is opened as TorchScript when
it is one, else with ``torch.load``. A whole pickled module, a TorchScript archive and a
``module:factory`` all run code as they load, so they load only when trusted (see
:mod:`aim_agent.models.trust`: the model an ``aim`` command is given, ``--trust-model``,
``[models]`` in ``aim.toml``); anything else is read with ``torch.load(weights_only=True)``,
which runs no code. A file holding only a ``state_dict`` cannot be probed on its own; write a
factory that builds the module and loads the state.

TorchScript modules do not run forward hooks. AIM probes their output and, for a scripted
``nn.Sequential``, each of its top-level children (named ``0``, ``1``, ... as in the file).
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from aim_agent.contracts import LoadedModel, ModelLoader
from aim_agent.models.fingerprint import module_fingerprint
from aim_agent.models.preprocess import imagenet_preprocess
from aim_agent.models.trust import FACTORY_SPEC as _FACTORY
from aim_agent.models.trust import is_trusted, require_trusted, untrusted

DEFAULT_INPUT_SIZE = 224
SAVED_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")


def plain_module_model(module: torch.nn.Module, *, name: str, input_size: int = DEFAULT_INPUT_SIZE,
                       source: str = "") -> LoadedModel:
    """A LoadedModel for a bare module: ImageNet preprocessing at ``input_size``, no prefix tokens."""
    module = module.eval()
    preprocess = imagenet_preprocess(input_size)
    return LoadedModel(
        name=name,
        module=module,
        preprocess=preprocess,
        input_size=input_size,
        fingerprint=module_fingerprint(module, preprocess.describe()),
        prefix_tokens=0,
        source=source,
    )


class ModuleFactoryLoader:
    """``package.module:factory`` -> ``factory()`` (an ``nn.Module`` or a ``LoadedModel``)."""

    name = "module-factory"

    def __init__(self, input_size: int = DEFAULT_INPUT_SIZE) -> None:
        self.input_size = input_size

    def can_load(self, spec: str) -> bool:
        match = _FACTORY.match(spec)
        if not match:
            return False
        if not is_trusted(spec):
            return True  # claim it without importing anything: load() explains how to trust it
        try:  # find_spec imports a dotted name's parent packages: only for trusted specs
            return importlib.util.find_spec(match["module"]) is not None
        except Exception:
            return False

    def where_looked(self, spec: str) -> str:
        if not _FACTORY.match(spec):
            return "not of the form 'package.module:factory'"
        module = spec.split(":", 1)[0]
        return f"importable module {module!r} (not found on sys.path; install it or add its folder to PYTHONPATH)"

    def load(self, spec: str) -> LoadedModel:
        match = _FACTORY.match(spec)
        if not match:
            raise ValueError(f"{spec!r} is not of the form 'package.module:factory'")
        require_trusted(spec, "a 'module:factory' spec (importing the module and calling the factory runs its code)")
        module = importlib.import_module(match["module"])
        factory: Any = module
        for part in match["attr"].split("."):
            try:
                factory = getattr(factory, part)
            except AttributeError:
                names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
                raise LookupError(
                    f"module {match['module']!r} has no {match['attr']!r}; callables there: {', '.join(names)}"
                ) from None
        if not callable(factory):
            raise ValueError(f"{spec!r} is not callable: a factory must build the model, e.g. `def build(): ...`")
        made = factory()
        if isinstance(made, LoadedModel):
            return made
        if not isinstance(made, torch.nn.Module):
            raise ValueError(
                f"{spec}() returned {type(made).__name__}; it must return a torch.nn.Module or an "
                "aim_agent.models.LoadedModel"
            )
        return plain_module_model(made, name=spec, input_size=self.input_size, source=spec)


class _ScriptCall(torch.nn.Module):
    """A Python module around a TorchScript module, so forward hooks can run on it."""

    def __init__(self, scripted: torch.nn.Module) -> None:
        super().__init__()
        self.scripted = scripted

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.scripted(*args, **kwargs)


def is_torchscript(path: Path) -> bool:
    """TorchScript archives carry compiled code (``*/code/``); torch.save archives do not."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _wrap_script(scripted: Any) -> torch.nn.Module:
    children = list(scripted.named_children())
    if getattr(scripted, "original_name", "") == "Sequential" and children:
        return torch.nn.Sequential(OrderedDict((n, _ScriptCall(c)) for n, c in children))
    return torch.nn.Sequential(OrderedDict(output=_ScriptCall(scripted)))


class SavedModuleLoader:
    """A TorchScript file or a ``torch.save``d whole module (``.pt``, ``.pth``, ``.ts``)."""

    name = "torch-file"

    def __init__(self, input_size: int = DEFAULT_INPUT_SIZE) -> None:
        self.input_size = input_size

    def can_load(self, spec: str) -> bool:
        try:
            path = Path(spec).expanduser()
            return path.suffix.lower() in SAVED_SUFFIXES and path.is_file()
        except Exception:
            return False

    def where_looked(self, spec: str) -> str:
        return f"a file {spec!r} ending in {', '.join(SAVED_SUFFIXES)} (TorchScript or torch.save of a whole module)"

    def load(self, spec: str) -> LoadedModel:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no model file at {spec!r}")
        if is_torchscript(path):
            require_trusted(spec, "a TorchScript archive (compiled code that runs as it loads and on every forward)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                scripted = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
            module = _wrap_script(scripted.eval())
        else:
            obj = _torch_load(path, spec)
            if isinstance(obj, LoadedModel):
                return obj
            if isinstance(obj, dict):
                raise ValueError(
                    f"{spec} holds a state_dict ({len(obj)} entries), not a module: write a factory that builds "
                    "the model and loads it, and give 'package.module:factory'"
                )
            if not isinstance(obj, torch.nn.Module):
                raise ValueError(f"{spec} holds a {type(obj).__name__}, not a torch.nn.Module")
            module = obj
        return plain_module_model(module, name=spec, input_size=self.input_size, source=str(path))


def _torch_load(path: Path, spec: str) -> Any:
    """``torch.load``: full unpickling (it runs code) only for a trusted spec, else weights only."""
    if is_trusted(spec):
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # a pickled module (or worse): needs the code it names
        raise untrusted(spec, "a pickle of Python objects (a torch.save of a whole module)") from exc


def builtin_loaders(input_size: int = DEFAULT_INPUT_SIZE) -> list[ModelLoader]:
    return [ModuleFactoryLoader(input_size), SavedModuleLoader(input_size)]

