"""``aim exemplars``: compute (or reuse) the exemplars of every unit of a layer over a dataset."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from aim_agent.cli import COMMANDS
from aim_agent.exemplars.engine import DEFAULT_K, DEFAULT_QUANTILE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "exemplars",
        help=COMMANDS["exemplars"],
        description="One streaming pass over the dataset computes, for every unit of LAYER, its top images "
        "(with activation maps) and its threshold (a high quantile of its activations). Results are cached "
        "and reused; an interrupted pass resumes where it stopped.",
    )
    parser.add_argument("--model", required=True, help="model spec (see `aim layers --help`)")
    parser.add_argument("--layer", required=True, help="layer name, as listed by `aim layers MODEL`")
    parser.add_argument("--sae", metavar="PATH", default=None,
                        help="an SAE trained on LAYER: exemplars for every latent, in the same single pass")
    parser.add_argument("--dataset", default=None,
                        help="image folder, or a dataset name from a plugin (default: world)")
    parser.add_argument("--k", type=int, default=DEFAULT_K, help=f"top images per unit (default {DEFAULT_K})")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE,
                        help=f"threshold quantile of each unit's activations (default {DEFAULT_QUANTILE})")
    parser.add_argument("--cache", metavar="DIR", default=None,
                        help="cache folder (default $AIM_CACHE or ~/.cache/aim)")
    parser.add_argument("--reduce", choices=("max", "mean"), default="max",
                        help="rank images by the spatial max or mean of the unit's map (default max)")
    parser.add_argument("--units", default=None, metavar="LIST",
                        help="units to summarise, e.g. 0,5,12 (default: the first 5)")
    parser.add_argument("--no-stop-early", action="store_true",
                        help="run the whole network on every batch instead of stopping after LAYER")
    parser.add_argument("--input-size", type=int, default=None,
                        help="input size for plain torch modules (module:factory, saved files); default 224")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar (default: when stderr is a terminal)")
    parser.set_defaults(func=run)


def _units(text: str | None, count: int) -> list[int]:
    if not text:
        return list(range(min(5, count)))
    try:
        units = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--units {text!r}: give comma-separated unit numbers, e.g. 0,5,12") from None
    bad = [u for u in units if not 0 <= u < count]
    if bad:
        raise ValueError(f"--units: {bad} out of range; this layer has units 0..{count - 1}")
    return units


def run(args: argparse.Namespace) -> int:
    from aim_agent.config import cli_trust
    from aim_agent.exemplars import compute_exemplars
    from aim_agent.models.probe import open_probe

    if args.k < 1 or args.batch_size < 1:
        raise ValueError("--k and --batch-size must be at least 1")
    with cli_trust(args, args.model):  # the person who typed the command chose this model
        probe = open_probe(args.model, args.layer, sae=args.sae, stop_early=not args.no_stop_early,
                           input_size=args.input_size)
    units = _units(args.units, probe.num_units)
    result = compute_exemplars(
        probe, args.dataset, k=args.k, batch_size=args.batch_size, cache_dir=args.cache,
        quantile=args.quantile, reduce=args.reduce, progress=args.progress,
    )
    console = Console(width=max(120, Console().width), highlight=False)
    folder = result.dataset
    grid = getattr(probe, "grid", None)
    shape = f", grid {grid[0]}x{grid[1]}" if grid else ""
    console.print(f"model      {probe.model_name}")
    console.print(f"layer      {probe.layer} ({getattr(probe, 'kind', 'units')}, {probe.num_units} units{shape})")
    console.print(f"dataset    {folder.name} ({len(folder)} files)")
    console.print(f"images     {result.images_seen} seen, {len(result.skipped)} skipped")
    for file, why in result.skipped:
        console.print(f"  skipped  {file}: {why}")
    how = (
        "reused from cache"
        if result.from_cache
        else f"computed in {result.seconds:.1f} s ({result.batches_run} batches)"
    )
    console.print(f"cache      {result.cache_path} ({how})")
    console.print(f"threshold  {result.quantile} quantile of each unit's activations ({result.quantile_method})")
    table = Table(title=f"top {args.k} {result.reduce} activations", title_justify="left")
    table.add_column("unit", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("top activations (file)")
    for unit in units:
        top = result.top(unit, args.k)
        shown = ", ".join(f"{ex.activation:.3g} {ex.file}" for ex in top[:3])
        more = f", ... ({len(top)} in all)" if len(top) > 3 else ""
        table.add_row(str(unit), f"{result.threshold(unit):.4g}", shown + more)
    console.print(table)
    return 0
