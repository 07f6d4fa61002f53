"""``aim circuit``: the upstream units that drive a unit, each interpreted and each edge verified by ablation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from aim_agent.cli import COMMANDS

if TYPE_CHECKING:
    from aim_agent.circuits.discover import Interpreter


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from aim_agent.config import add_trust_argument

    parser = sub.add_parser(
        "circuit",
        help=COMMANDS["circuit"],
        description="On the unit's top dataset exemplars: ranks the upstream units (the previous layer's channels, "
        "or an SAE's latents with --upstream-sae) by attribution (activation x gradient, or integrated gradients), "
        "keeps the top ones, ablates each (and all together) to measure its effect on the unit, interprets the "
        "unit and each upstream unit with the agent (offline scientist or a VLM backend), and writes "
        "OUT/circuit.html (graph, labels, exemplars, ablation effects) and OUT/circuit.json.",
    )
    parser.add_argument("--model", required=True, help="model spec, as for `aim layers` (e.g. world-cnn)")
    parser.add_argument("--layer", required=True, help="the unit's layer")
    parser.add_argument("--unit", type=int, required=True, help="the unit (a latent index with --sae)")
    parser.add_argument("--sae", metavar="PATH", help="an SAE on LAYER: the unit is one of its latents")
    parser.add_argument("--upstream", metavar="LAYER", help="upstream layer (default: the layer before LAYER)")
    parser.add_argument("--upstream-sae", metavar="PATH", help="an SAE on the upstream layer: rank its latents")
    parser.add_argument("--top", type=int, default=4, help="upstream units kept (default 4)")
    parser.add_argument("--images", type=int, default=24, help="top exemplars measured on (default 24)")
    parser.add_argument("--method", choices=("grad_x_act", "integrated_gradients"), default="grad_x_act")
    parser.add_argument("--steps", type=int, default=16, help="integrated-gradients steps (default 16)")
    parser.add_argument("--ablation", choices=("zero", "mean"), default="zero", help="ablation mode (default zero)")
    parser.add_argument("--min-effect", type=float, default=0.05,
                        help="relative change an ablation must cause to verify an edge (default 0.05)")
    parser.add_argument("--no-interpret", action="store_true", help="skip interpreting the units (fast)")
    parser.add_argument("--backend", metavar="BACKEND",
                        help="who interprets: offline | google_genai[:MODEL] | openai[:MODEL] | ... (default: as "
                        "aim interpret)")
    parser.add_argument("--max-rounds", type=int, default=4, help="experiment rounds per interpretation (default 4)")
    parser.add_argument("--dataset", metavar="PATH", help="exemplar dataset (image folder or dataset name)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default circuits/MODEL-LAYER-UNIT)")
    parser.add_argument("--json", action="store_true", help="print circuit.json")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_trust_argument(parser)
    parser.set_defaults(func=main)


def agent_interpreter(*, model: str, out: Path, backend: str | None, max_rounds: int,
                      dataset: str | None) -> Interpreter:
    """An :data:`~aim_agent.circuits.discover.Interpreter` that runs the interpretation agent on each unit.

    Each run goes to ``OUT/runs/<node>-<layer>-<unit>``; a run left there by an earlier ``aim circuit`` into the
    same folder is resumed (or, finished, reused) instead of repeated.
    """
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.runner import run_interpret
    from aim_agent.circuits.discover import CircuitNode

    runs = out / "runs"

    def interpret(node: CircuitNode, layer: str, sae: str | None) -> None:
        run_id = f"{node.key}-{layer.replace('/', '-').replace('.', '-')}-{node.unit}"
        try:
            if (runs / run_id / "run.json").exists():
                result = run_interpret(None, resume=run_id, runs_dir=runs)
            else:
                config = RunConfig(model=model, layer=layer, unit=node.unit, sae=sae,
                                   backend=BackendSpec.parse(backend), max_rounds=max_rounds, runs_dir=str(runs),
                                   run_id=run_id, exemplar_dataset=dataset)
                result = run_interpret(config)
        except Exception as exc:  # one failed interpretation must not lose the circuit
            node.error = f"{type(exc).__name__}: {exc}"
            return
        node.run_id = result.run_id
        if result.report_path is not None:
            node.report = str(result.report_path.relative_to(out))
        if result.conclusion is not None:
            node.label = ", ".join(result.conclusion.labels[:3]) or None
            node.description = result.conclusion.description
            node.confidence = result.conclusion.confidence

    return interpret


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from aim_agent.agent.backends import BackendSpec
    from aim_agent.circuits.discover import discover_circuit, write_circuit
    from aim_agent.config import cli_trust
    from aim_agent.report.circuit import render_circuit

    if args.top < 1 or args.images < 1 or args.max_rounds < 1:
        raise ValueError("--top, --images and --max-rounds must be at least 1")
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{Path(args.model).name}-{args.layer}-{args.unit}")
    out = args.out or Path("circuits") / slug
    console = Console(stderr=True, highlight=False)
    say = None if args.quiet or args.json else (lambda line: console.print(f"[dim]aim[/dim] {line}"))
    interpreter = None if args.no_interpret else agent_interpreter(
        model=args.model, out=out, backend=args.backend, max_rounds=args.max_rounds, dataset=args.dataset)
    with cli_trust(args, args.model):  # the person who typed the command chose this model
        circuit = discover_circuit(
            args.model, args.layer, args.unit, sae=args.sae, upstream_layer=args.upstream,
            upstream_sae=args.upstream_sae, top=args.top, images_k=args.images, method=args.method, steps=args.steps,
            mode=args.ablation, min_effect=args.min_effect, interpreter=interpreter,
            interpreted_by=BackendSpec.parse(args.backend).label(), dataset=args.dataset, out=out, progress=say,
        )
    write_circuit(circuit, out, html=render_circuit(circuit))
    if args.json:
        print(json.dumps(circuit.to_json(), indent=2))
        return 0
    printer = Console(highlight=False, soft_wrap=True)
    target = circuit.node("target")
    printer.print(f"circuit of unit {circuit.unit} of {circuit.target_layer} ({circuit.model})"
                  + (f": {target.label}" if target.label else ""))
    labels = {n.unit: n.label for n in circuit.nodes if n.role == "upstream"}
    for edge in circuit.edges:
        mark = "verified" if edge.verified else "not confirmed"
        printer.print(f"  {circuit.upstream_layer} {edge.source:>4}  attribution {edge.share:+6.1%}  ablation "
                      f"{100 * edge.relative_change:+6.1f}%  {mark:<13}  {labels.get(edge.source) or ''}")
    printer.print(f"  all together: {100 * float(circuit.joint['relative_change']):+.1f}%")
    printer.print(f"report  {out / 'circuit.html'}")
    printer.print(f"json    {out / 'circuit.json'}")
    return 0
