"""``aim layers MODEL``: the layers of a model that AIM can probe, with kind, shape and units.

Without MODEL: what can be studied by name, the models the plugins' loaders know (shipped world
CNNs, ...) and the unit sources (synthetic neurons).
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from aim_agent.cli import COMMANDS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "layers",
        help=COMMANDS["layers"],
        description="Load MODEL (a transformers directory or cached id, 'package.module:factory', a "
        "TorchScript/torch.save file, or a plugin model such as world-cnn) and list its layers from one "
        "forward pass of a blank image. Without MODEL: the models the installed plugins know by name, "
        "and their unit sources (synthetic neurons).",
    )
    parser.add_argument("model", nargs="?", help="model spec (omit it to list the named models)")
    parser.add_argument("--kind", choices=("conv", "tokens", "vector"), help="only layers of this kind")
    parser.add_argument("--grep", metavar="TEXT", help="only layers whose name contains TEXT")
    parser.add_argument("--all", action="store_true",
                        help="also list modules whose output repeats another's (dropouts, wrappers)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="input size for plain torch modules (module:factory, saved files); default 224")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aim_agent.config import cli_trust
    from aim_agent.models.base import open_model
    from aim_agent.models.probe import list_layers

    if not args.model:
        return list_named()
    with cli_trust(args, args.model):  # the person who typed the command chose this model
        model = open_model(args.model, input_size=args.input_size)
    layers = list_layers(model, dedupe=not args.all)
    if args.kind:
        layers = [info for info in layers if info.kind == args.kind]
    if args.grep:
        layers = [info for info in layers if args.grep in info.name]
    table = Table(title=f"{model.name}: {len(layers)} layers (input {model.input_size} px)", title_justify="left")
    for column, justify in (("layer", "left"), ("kind", "left"), ("output shape", "left"), ("units", "right"),
                            ("grid", "left"), ("module", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for info in layers:
        table.add_row(info.name, info.kind, "x".join(map(str, info.shape)), str(info.units),
                      f"{info.grid[0]}x{info.grid[1]}", info.module_type)
    console = Console(width=max(120, Console().width))
    console.print(table)
    console.print(f"Probe one with: aim exemplars --model {model.name} --layer LAYER --dataset FOLDER")
    return 0


def list_named() -> int:
    """The models the plugins' loaders know by name, and the unit sources (counts only)."""
    from aim_agent.models.base import known_models
    from aim_agent.plugins import SYNTHETIC, plugin_manager

    console = Console(width=max(120, Console().width), highlight=False)
    models = known_models()
    table = Table(title=f"named models: {len(models)}", title_justify="left")
    for column in ("model", "loader", "available"):
        table.add_column(column)
    for info in models:
        table.add_row(str(info["name"]), str(info["loader"]), "yes" if info.get("available") else "no")
    console.print(table)
    sources = plugin_manager().unit_sources()
    for source in sources:
        console.print(f"unit source [bold]{source.name}[/bold]: {len(source.unit_names())} units, "
                      f"{getattr(source, 'description', '')}")
    if any(source.name == SYNTHETIC for source in sources):
        console.print(f"Study one with: aim interpret --{SYNTHETIC} INDEX_OR_NAME "
                      "(a unit of another source: --synthetic SOURCE:UNIT, e.g. fresh:s7_3)")
    console.print("Layers of a model: aim layers MODEL (also a transformers directory, "
                  "'package.module:factory' or a saved module)")
    return 0
