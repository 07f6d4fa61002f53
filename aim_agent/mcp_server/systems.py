"""Opening a unit for an MCP session under the server's model policy: the tool ``load_system``, and a
session restored from its handle (:class:`aim_agent.mcp_server.state.SessionRestorer`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from aim_agent.models.trust import ModelNotAllowed, ModelPolicy
from aim_agent.plugins import SYNTHETIC
from aim_agent.tools.base import ToolError, ToolInput

if TYPE_CHECKING:
    from aim_agent.plugins import AimPlugins


class LoadSystemInput(ToolInput):
    model: str | None = Field(default=None, max_length=500, description="a model list_models offers")
    layer: str | None = Field(default=None, max_length=200, description="layer name (see list_layers)")
    unit: int | None = Field(default=None, ge=0, description="unit index in the layer")
    synthetic: str | None = Field(default=None, max_length=200, description="or: a synthetic neuron's name")
    sae: str | None = Field(
        default=None, max_length=500, description="with model and layer: a configured SAE; unit = latent"
    )
    reduce: Literal["max", "mean"] = Field(default="max", description="how a spatial map becomes one activation")


def offered(policy: ModelPolicy, plugins: AimPlugins, spec: str, what: str = "model") -> str:
    """The spec to load for a model (or SAE) a client named, if this server offers it."""
    try:
        return policy.resolve(spec, plugins.model_loaders(), what=what)
    except ModelNotAllowed as exc:
        raise ToolError(str(exc)) from None


def build_system(
    policy: ModelPolicy, plugins: AimPlugins, args: LoadSystemInput
) -> tuple[Any, Literal["neuron", "synthetic", "sae"]]:
    """The system ``load_system`` (or a restored handle) asks for, under the server's model policy."""
    if args.synthetic:
        if args.model or args.layer or args.sae:
            raise ToolError("give either synthetic, or model + layer + unit (+ sae), not both")
        try:
            return plugins.unit_system(SYNTHETIC, args.synthetic), "synthetic"
        except LookupError as exc:  # an unknown unit, or the plugin that provides synthetic neurons is absent
            raise ToolError(str(exc)) from None
    missing = [n for n in ("model", "layer", "unit") if getattr(args, n) is None]
    if missing:
        raise ToolError(
            f"load_system needs model, layer and unit (missing: {', '.join(missing)}), or synthetic=NAME; "
            "list_models and list_layers show what exists"
        )
    from aim_agent.models.probe import open_probe
    from aim_agent.system import System

    model = offered(policy, plugins, str(args.model))
    sae = offered(policy, plugins, args.sae, "sae") if args.sae else None
    try:
        probe = open_probe(model, str(args.layer), sae=sae, loaders=plugins.model_loaders())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, KeyError) as exc:
        if not sae:
            raise
        raise ToolError(f"cannot load the SAE {args.sae!r}: {exc}") from None
    return System(probe, int(args.unit), reduce=args.reduce), ("sae" if args.sae else "neuron")  # type: ignore[arg-type]
