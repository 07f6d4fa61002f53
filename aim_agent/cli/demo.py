"""``aim demo``: the whole loop, offline, in about a minute: the offline scientist explains one unit
of the world CNN (or a synthetic neuron) and writes an HTML report.

No network, no API key, no model download: the world CNN ships with AIM, the images come from
the embedded world, and the scientist is the rule-based offline one. All three come from the
world plugin: without it the demo stops at once with an error that says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aim_agent.cli import COMMANDS

if TYPE_CHECKING:
    from aim_agent.agent.config import RunConfig

import argparse
from pathlib import Path

#: the plugin (entry-point name) that provides the demo's model, providers, scientist and neurons
DEMO_PLUGIN = "world"
DEMO_MODEL = "world-cnn"
DEMO_LAYER = "conv5"
#: a conv5 unit of the shipped weights with one clean concept (airplanes): chosen once by running the offline
#: scientist over conv5 units, and fixed so every demo is the same run. Any other unit: ``--unit``.
DEMO_UNIT = 138
#: ``aim demo --real``: a real ImageNet model on real photos, from the imagenet plugin, described by a tagger
#: built on a different model (Lite2), interpreted by the core's concept scientist
REAL_PLUGIN = "imagenet"
REAL_MODEL = "efficientnet-lite0"
#: an output unit (its meaning is known: the ImageNet class 'sax'), so the run can be checked by eye; the first
#: run describes the 1000 photos once with the tagger (minutes on a CPU), later runs reuse that cache
REAL_LAYER = "_fc"
REAL_UNIT = 776
REAL_DESCRIBER = "photo-tagger-lite2"
REAL_DATASET = "imagenet-sample"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help=COMMANDS["demo"],
        description="Interprets one unit of the shipped world CNN with the rule-based offline scientist: "
        "dataset exemplars, blind descriptions, controlled experiments with generated and edited images, a "
        "critic, a conclusion. Prints where report.html is.",
    )
    parser.add_argument("--real", action="store_true",
                        help=f"a real ImageNet model instead: {REAL_MODEL} unit {REAL_UNIT} of {REAL_LAYER} on the "
                        f"ImageNet sample photos (`aim photos info` says where they are), described by "
                        f"{REAL_DESCRIBER}, interpreted by the concept scientist")
    parser.add_argument("--unit", type=int, default=None,
                        help=f"unit of the layer (default {DEMO_UNIT}; with --real {REAL_UNIT})")
    parser.add_argument("--layer", default=None,
                        help=f"layer (default {DEMO_LAYER} of {DEMO_MODEL}; with --real {REAL_LAYER})")
    parser.add_argument("--synthetic", metavar="NAME", default=None,
                        help="interpret this synthetic neuron (ground truth known) instead of a CNN unit")
    parser.add_argument("--out", metavar="DIR", default="runs", help="where the run folder is written (default runs)")
    parser.add_argument("--mode", choices=("code", "tools"), default="code",
                        help="code: experiments are Python run in the sandbox; tools: tool calls (default code)")
    parser.add_argument("--max-rounds", type=int, default=8, help="experiment rounds at most (default 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=main)


def demo_config(args: argparse.Namespace) -> RunConfig:
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig

    if args.real:
        if args.synthetic:
            raise ValueError("--real interprets a unit of a real model; --synthetic a synthetic neuron: give one")
        return RunConfig(model=REAL_MODEL, layer=args.layer or REAL_LAYER,
                         unit=REAL_UNIT if args.unit is None else args.unit, describer=REAL_DESCRIBER,
                         exemplar_dataset=REAL_DATASET, backend=BackendSpec(provider="concepts"), mode=args.mode,
                         max_rounds=args.max_rounds, runs_dir=str(args.out))
    unit = dict(synthetic=args.synthetic) if args.synthetic else dict(
        model=DEMO_MODEL, layer=args.layer or DEMO_LAYER, unit=DEMO_UNIT if args.unit is None else args.unit)
    return RunConfig(**unit, backend=BackendSpec(provider="offline"), mode=args.mode,
                     max_rounds=args.max_rounds, runs_dir=str(args.out))


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from aim_agent.plugins import plugin_manager

    plugin_manager().require(REAL_PLUGIN if args.real else DEMO_PLUGIN, "the real demo" if args.real else "the demo")
    from aim_agent.agent.runner import run_interpret

    config = demo_config(args)
    err = Console(stderr=True, highlight=False)
    say = None if args.quiet else (lambda line: err.print(f"[dim]aim demo[/dim] {line}"))
    result = run_interpret(config, progress=say)
    out = Console(highlight=False)
    if result.conclusion is not None:
        out.print(result.conclusion.maia_text())
        out.print(f"[dim]confidence {result.conclusion.confidence:.2f}, {result.rounds_run} rounds[/dim]")
    if result.ground_truth:
        out.print(f"[dim]ground truth:[/dim] {result.ground_truth}")
    if result.report_path is None:
        out.print(f"[yellow]no report was written[/yellow] (see {result.run_dir / 'report-error.txt'})")
        return 1
    report = Path(result.report_path).resolve()
    out.print(f"report  {report}")
    out.print(f"open    {report.as_uri()}")
    return 0
