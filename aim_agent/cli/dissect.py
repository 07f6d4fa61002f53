"""``aim dissect``: a Network Dissection reference label for every unit of a layer, on a dataset with exact masks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aim_agent.cli import COMMANDS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dissect",
        help=COMMANDS["dissect"],
        description="Network Dissection on a dataset with exact concept masks (the world's datasets): for each "
        "unit, the concept whose masks best overlap the unit's top-quantile region (IoU) and the concept whose "
        "presence best predicts the unit's activation (AUC). One pass over the dataset, cached.",
    )
    parser.add_argument("--model", required=True, help="model spec, as for `aim layers` (e.g. world-cnn)")
    parser.add_argument("--layer", required=True, help="layer name, as listed by `aim layers MODEL`")
    parser.add_argument("--dataset", default=None, help="dataset name or folder with exact masks (default world)")
    parser.add_argument("--quantile", type=float, default=None,
                        help="activation quantile that thresholds each unit (default 0.995: the top 0.5%%)")
    parser.add_argument("--units", default=None, help="units to show, e.g. 0-9,17 (default all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", metavar="PATH", help="also write the dissection as JSON to PATH")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=main)


def parse_units(text: str | None, count: int) -> list[int] | None:
    """'0-9,17' -> [0, ..., 9, 17]; an error naming the valid range when a unit is out of it."""
    if not text:
        return None
    units: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"--units takes numbers and ranges like 0-9,17, not {part!r}") from None
        units += range(first, last + 1)
    bad = [u for u in units if not 0 <= u < count]
    if bad:
        raise ValueError(f"units {bad[:5]} are out of range: the layer has units 0..{count - 1}")
    return units


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from aim_agent.eval.dissect import DEFAULT_QUANTILE, dissect, dissection_table
    from aim_agent.models.probe import open_probe

    probe = open_probe(args.model, args.layer)
    result = dissect(probe, args.dataset, quantile=args.quantile or DEFAULT_QUANTILE, batch_size=args.batch_size)
    units = parse_units(args.units, len(result.units))
    data = result.to_json()
    if units is not None:
        data["units"] = [u for u in data["units"] if u["unit"] in set(units)]
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    console = Console(highlight=False)
    console.print(dissection_table(result, units))
    source = "cache" if result.from_cache else f"{result.seconds:.0f} s"
    print(f"{result.images} images, {len(result.concept_images)} concepts present; from {source}: "
          f"{result.cache_path}", file=sys.stderr)
    return 0
