"""``aim world ...``: the embedded image world from the command line.

The plugin registers this module as a command (hook ``aim_cli_commands``: ``name`` and
``register(subparsers)``). Each sub-command is a registrar in :data:`SUBCOMMANDS` (a
function taking the ``world`` group's sub-parsers); another module adds its own with
:func:`subcommand`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

#: the command's name: ``aim world``
name = "world"
#: its one-line help (``aim --help`` lists it without calling :func:`register`)
help = "the embedded image world: render prompts, build datasets, train the world model"
Registrar = Callable[[argparse._SubParsersAction], None]
SUBCOMMANDS: list[Registrar] = []


def subcommand(registrar: Registrar) -> Registrar:
    """Decorator: add a ``world`` sub-command registrar (``aim world render``, ``dataset``, ``train``)."""
    SUBCOMMANDS.append(registrar)
    return registrar


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("world", help=help)
    world_sub = parser.add_subparsers(dest="world_command", metavar="WORLD_COMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    for registrar in SUBCOMMANDS:
        registrar(world_sub)


def _check_size(size: int) -> None:
    if not 16 <= size <= 2048:
        raise ValueError(f"--size must be between 16 and 2048 pixels, got {size}")


@subcommand
def _register_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="draw a prompt: writes the PNG and its scene graph (.json)",
        description="Draw a prompt such as 'a red dog next to a blue car on the beach'. Writes OUT.png and "
        "OUT.json (the scene graph) and says which words could not be drawn.",
    )
    p.add_argument("prompt", help="what to draw, in words")
    p.add_argument("-o", "--out", default="world.png", help="PNG path to write (default: world.png)")
    p.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    p.add_argument("--seed", type=int, default=0, help="placement/colour seed (default 0)")
    p.set_defaults(func=run_render)


def run_render(args: argparse.Namespace) -> int:
    from aim_agent.providers import ProviderError
    from aim_world.parse import parse
    from aim_world.render import render

    _check_size(args.size)
    try:
        scene = parse(args.prompt, seed=args.seed)
    except ProviderError as exc:
        print(f"aim world render: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        out = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    render(scene, args.size).image.save(out)
    scene_path = out.with_suffix(".json")
    scene_path.write_text(json.dumps(scene.model_dump(), indent=2) + "\n")
    print(f"wrote {out} and {scene_path}: {scene.caption()}")
    if scene.unknown_words:
        print("could not draw: " + ", ".join(repr(w) for w in scene.unknown_words))
    for note in scene.notes:
        print(f"note: {note}")
    return 0


@subcommand
def _register_dataset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dataset",
        help="write a folder of world images + scenes.jsonl (random scenes or a task dataset)",
        description="Render N world images into OUT (PNG files and scenes.jsonl with each image's scene graph "
        "and label). Kinds: random (default; the exemplar dataset), classify (20 classes), spawrious "
        "(animals tied to backgrounds in train), bias (planted correlations, ground truth in bias.json). "
        "The folder appears only when complete.",
    )
    p.add_argument("out", help="folder to create")
    p.add_argument("-n", "--n", type=int, default=2000, help="number of images (default 2000)")
    p.add_argument("--kind", choices=("random", "classify", "spawrious", "bias"), default="random")
    p.add_argument("--split", choices=("train", "test"), default="train",
                   help="for spawrious and bias: train (correlated) or test (shuffled / unbiased)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run_dataset)


def run_dataset(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from aim_world.datasets import write_dataset

    _check_size(args.size)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"rendering {args.kind}", total=args.n)
        out = write_dataset(args.out, args.n, args.seed, args.kind, split=args.split, size=args.size,
                            overwrite=args.overwrite, progress=lambda i, n: progress.update(task, completed=i))
    extra = " and bias.json" if args.kind == "bias" else ""
    print(f"wrote {args.n} images, scenes.jsonl{extra} to {out}")
    return 0


@subcommand
def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a world CNN (reproduces the shipped weights)",
        description="Train the world CNN for a task with the settings of the shipped weights (override with "
        "--epochs/--n-train). Writes OUT (.safetensors) and OUT.json (classes, accuracies, settings). "
        "Default OUT is the shipped file of the task.",
    )
    p.add_argument("--task", choices=("classify", "spawrious", "bias"), required=True)
    p.add_argument("--out", default=None, help="weights path (.safetensors) or folder")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--n-train", type=int, default=None, dest="n_train")
    p.add_argument("--n-test", type=int, default=None, dest="n_test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from aim_world.train import train

    info = train(args.task, args.out, args.epochs, args.n_train, args.seed, n_test=args.n_test,
                 threads=args.threads)
    print(json.dumps(info["accuracy"], indent=2))
    return 0


@subcommand
def _register_bias_twins(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bias-twins",
        help="measure how much a bias model needs each planted feature, on counterfactual twins",
        description="Render N unbiased test scenes of each planted bias's class twice, with and without its "
        "feature (nothing else changed), and report the model's accuracy and class probability on each twin. "
        "Records the result in the weights' .json sidecar (accuracy.counterfactual); no training.",
    )
    p.add_argument("--weights", default=None, help="a bias model (.safetensors); default the shipped one")
    p.add_argument("--n", type=int, default=None, help="scenes per planted bias (default 300)")
    p.set_defaults(func=run_bias_twins)


def run_bias_twins(args: argparse.Namespace) -> int:
    from aim_world.train import TWINS_PER_BIAS, measure_twins

    if args.n is not None and args.n < 1:
        print(f"aim world bias-twins: --n must be at least 1, not {args.n}", file=sys.stderr)
        return 2
    print(json.dumps(measure_twins(args.weights, args.n or TWINS_PER_BIAS), indent=2))
    return 0


@subcommand
def _register_sheet(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sheet",
        help="draw a contact sheet of prompts and edits with captions",
        description="Read CASES (one prompt, or 'prompt | edit instruction', per line; # starts a comment) and "
        "write a PNG contact sheet: each tile captioned with the case and what the world drew.",
    )
    p.add_argument("cases", help="text file of cases")
    p.add_argument("-o", "--out", default="sheet.png", help="PNG path to write (default: sheet.png)")
    p.add_argument("--size", type=int, default=128, help="tile side in pixels (default 128)")
    p.add_argument("--columns", type=int, default=8, help="tiles per row (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_sheet)


def run_sheet(args: argparse.Namespace) -> int:
    from PIL import Image

    from aim_world.sheet import contact_sheet, read_cases

    _check_size(args.size)
    if not 1 <= args.columns <= 32:
        raise ValueError(f"--columns must be between 1 and 32, got {args.columns}")
    cases = read_cases(Path(args.cases))
    out = Path(args.out).with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(cases, args.size, args.columns, args.seed)
    sheet.quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)  # a small file for the docs
    print(f"wrote {out}: {len(cases)} cases, {out.stat().st_size // 1024} KiB")
    return 0
