"""Which models may run code when they load, and which models an MCP client may name.

Two questions, answered by the person who started AIM, never by a client:

1. **May loading this model run code?** A ``torch.save`` pickle of a whole module, a
   TorchScript archive and a ``package.module:factory`` spec all execute code from the file
   or module as they load. AIM loads them only for specs in the current trust scope
   (:func:`trusting`), which the command line opens: the model an ``aim`` command is given
   (``aim layers net.pt``), ``--trust-model SPEC``, and ``aim.toml``'s ``[models]`` entries
   for ``aim mcp``. Everything else loads from data-only formats: safetensors,
   ``torch.load(weights_only=True)``, transformers directories without remote code. The
   scope is a context variable, so one server's trust never leaks into another server or
   thread, and nothing a client sends can widen it.
2. **Which models may an MCP client name?** :class:`ModelPolicy`: the names loaders register
   (``world-cnn``), and the names and specs the operator configured (``[models]`` in
   ``aim.toml``, ``aim mcp --trust-model``). Never an arbitrary path or module.

From Python, open the scope yourself for a model you trust::

    from aim_agent.models import trusting
    with trusting("my_models:build"):
        model = load_model("my_models:build")
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``package.module:factory`` (the module-factory loader's spec form)
FACTORY_SPEC = re.compile(
    r"^(?P<module>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):(?P<attr>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)$"
)
#: a registered model name: one word, no path separators, no scheme
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$")
#: file suffixes that make a bare word a file name, not a registered name
_FILE_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".safetensors", ".bin", ".ckpt", ".pkl", ".pickle", ".onnx")

HOW_TO_TRUST = (
    "the person who starts AIM can allow it: name it on the command line (`--trust-model SPEC`, or "
    "as the model of an `aim` command), or list it in aim.toml under [models] (allowed = [\"SPEC\"], "
    "or [models.named] NAME = \"SPEC\")"
)

_SCOPE: ContextVar[frozenset[str]] = ContextVar("aim_trusted_models", default=frozenset())


class UntrustedModel(PermissionError):
    """A model that would run code as it loads, and that nobody trusted; the message says how to allow it."""


class ModelNotAllowed(PermissionError):
    """An MCP client named a model the server does not offer; the message lists what it offers."""


def trust_key(spec: str) -> str:
    """What trust is keyed on: an existing path resolved (symlinks, ``~``, ``..``), else the text itself."""
    text = str(spec).strip()
    if not FACTORY_SPEC.match(text):
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            path = Path(text).expanduser()
            if path.exists():
                return str(path.resolve())
    return text


@contextlib.contextmanager
def trusting(*specs: str | None) -> Iterator[frozenset[str]]:
    """Within this block (this thread or task), loading ``specs`` may run their code.

    Adds to the current scope; empty or None specs are ignored. Only code that acts for the
    person who started AIM opens a scope: the CLI, and a server for what its operator
    configured.
    """
    keys = _SCOPE.get() | {trust_key(s) for s in specs if s}
    token = _SCOPE.set(frozenset(keys))
    try:
        yield keys
    finally:
        _SCOPE.reset(token)


def is_trusted(spec: str) -> bool:
    return trust_key(spec) in _SCOPE.get()


def untrusted(spec: str, what: str) -> UntrustedModel:
    """The refusal for loading ``spec`` untrusted; ``what`` says why loading it runs code."""
    return UntrustedModel(
        f"refusing to load {spec!r}: it is {what}, so loading it would run code from it, and it is not "
        f"trusted. If you trust it, {HOW_TO_TRUST}. Data-only formats need no trust: safetensors, "
        "a transformers directory, or a factory you trust that loads a state_dict"
    )


def require_trusted(spec: str, what: str) -> None:
    """Raise :func:`untrusted` unless ``spec`` is in the trust scope."""
    if not is_trusted(spec):
        raise untrusted(spec, what)


# -- what MCP clients may name ---------------------------------------------------------------------


def is_path_like(text: str) -> bool:
    """Whether ``text`` names a file, folder or module rather than a registered model name."""
    if not _NAME.match(text) or text.lower().endswith(_FILE_SUFFIXES):
        return True
    with contextlib.suppress(OSError, ValueError):
        if Path(text).exists():
            return True
    return False


def is_registered_name(text: str, loaders: Sequence[Any]) -> bool:
    """A bare name a loader knows by itself (``world-cnn``, a plugin's model), not a path or module."""
    if is_path_like(text):
        return False
    for loader in loaders:
        for check in ("can_load", "can_probe"):
            method = getattr(loader, check, None)
            try:
                if callable(method) and method(text):
                    return True
            except Exception:  # can_load must not raise; a broken loader just does not claim the name
                continue
    return False


@dataclass(frozen=True)
class ModelPolicy:
    """The models an MCP server offers its clients, and the specs its operator trusts.

    ``named`` maps a name a client may use to the spec it loads (``[models.named]``);
    ``allowed`` lists specs a client may give as they are (``[models] allowed``,
    ``--trust-model``). Both are operator choices, so both are trusted to run code as they
    load (:meth:`trusted`). Names that loaders register (``world-cnn``) are always offered;
    they load through their plugin's own code.
    """

    named: Mapping[str, str] = field(default_factory=dict)
    allowed: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Any, extra: Iterable[str] = ()) -> ModelPolicy:
        named = dict(getattr(config, "named_models", None) or {})
        allowed = [*(getattr(config, "allowed_models", None) or []), *extra]
        return cls(named=named, allowed=tuple(dict.fromkeys(s for s in allowed if s)))

    def trusted(self) -> list[str]:
        """Every spec the operator configured: what a server opens its trust scope to."""
        return list(dict.fromkeys([*self.allowed, *self.named.values()]))

    def resolve(self, spec: str, loaders: Sequence[Any], *, what: str = "model") -> str:
        """The spec to load for what a client named; :class:`ModelNotAllowed` when it is not offered.

        ``what="sae"`` checks an SAE folder: only configured ones (named or allowed) are offered.
        """
        text = str(spec).strip()
        if text in self.named:
            return self.named[text]
        key = trust_key(text)
        if key in {trust_key(s) for s in self.trusted()}:
            return text
        if what == "model" and is_registered_name(text, loaders):
            return text
        raise ModelNotAllowed(self.refusal(text, what))

    def refusal(self, text: str, what: str = "model") -> str:
        offered = [*self.named, *self.allowed]
        listed = ", ".join(repr(s) for s in offered[:20]) + (" ..." if len(offered) > 20 else "")
        builtin = " and the names model plugins register (see list_models)" if what == "model" else ""
        kind = "SAE" if what == "sae" else "model"
        return (
            f"the {kind} {text!r} is not offered by this server. MCP clients choose among the {kind}s the "
            f"operator configured ({listed or 'none configured'}){builtin}; other paths and "
            "'module:factory' specs are refused. The person who starts the server can offer more: "
            "`aim mcp --trust-model SPEC`, or in aim.toml [models] allowed = [\"SPEC\"] or "
            "[models.named] NAME = \"SPEC\""
        )

    def describe(self) -> dict[str, Any]:
        """What ``list_models`` shows: the configured names and specs a client may load."""
        return {"named": dict(self.named), "allowed": list(self.allowed)}
