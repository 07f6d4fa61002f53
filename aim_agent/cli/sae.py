"""``aim sae train`` / ``aim sae info``: fit a sparse autoencoder to a layer (its latents become units), or
show what a saved one (AIM, SAELens, overcomplete) holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aim_agent.cli import COMMANDS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from aim_agent.config import add_trust_argument

    parser = sub.add_parser("sae", help=COMMANDS["sae"])
    sae_sub = parser.add_subparsers(dest="sae_command", metavar="SAE_COMMAND")
    train = sae_sub.add_parser(
        "train",
        help="train an SAE on a layer's activations over a dataset; reports held-out FVU, L0 and dead latents",
        description="Streams DATASET through MODEL once, keeps the layer's activation vectors (one per spatial "
        "position), holds out a tenth of the images, trains a TopK (or BatchTopK, or ReLU+L1) SAE with unit-norm "
        "decoder columns and AuxK dead-latent revival, and saves it to OUT with its metrics and their history. "
        "Then: aim interpret --model M --layer L --sae OUT --unit LATENT, or aim exemplars ... --sae OUT.",
    )
    train.add_argument("--model", required=True, help="model spec, as for `aim layers`")
    train.add_argument("--layer", required=True, help="layer name, as listed by `aim layers MODEL`")
    train.add_argument("--dataset", default=None, help="image folder or dataset name (default: world)")
    train.add_argument("--latents", type=int, default=None, help="number of latents (default: 8 x the layer's width)")
    train.add_argument("--activation", choices=("topk", "batchtopk", "relu"), default="topk")
    train.add_argument("--k", type=int, default=None,
                       help="active latents per vector (topk, batchtopk; default latents/16, at most 32)")
    train.add_argument("--epochs", type=int, default=5, help="passes over the training vectors (default 5)")
    train.add_argument("--batch-vectors", type=int, default=2048, help="vectors per optimiser step (default 2048)")
    train.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 0.002)")
    train.add_argument("--l1", type=float, default=3e-3, help="L1 coefficient of a relu SAE (default 0.003)")
    train.add_argument("--held-out", type=float, default=0.1, help="fraction of images held out (default 0.1)")
    train.add_argument("--max-vectors", type=int, default=4_000_000,
                       help="subsample positions so at most this many vectors are kept (default 4M)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="folder to save the SAE in")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="show progress bars (default: when stderr is a terminal)")
    train.add_argument("--json", action="store_true", help="print the saved metadata as JSON")
    add_trust_argument(train)
    train.set_defaults(func=run_train)
    info = sae_sub.add_parser("info", help="what a saved SAE is (AIM, SAELens or overcomplete layout)")
    info.add_argument("path", help="SAE folder or .safetensors file")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=run_info)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)


def run_train(args: argparse.Namespace) -> int:
    from aim_agent.config import cli_trust
    from aim_agent.models.probe import open_probe
    from aim_agent.sae import train_sae

    if args.epochs < 1 or (args.latents is not None and args.latents < 1) or args.batch_vectors < 1:
        raise ValueError("--latents, --epochs and --batch-vectors must be at least 1")
    if args.k is not None and args.k < 1:
        raise ValueError("--k must be at least 1")
    with cli_trust(args, args.model):  # the person who typed the command chose this model
        probe = open_probe(args.model, args.layer)
    latents = args.latents or 8 * probe.num_units
    sae = train_sae(probe, args.dataset, latents, activation=args.activation, k=args.k, epochs=args.epochs,
                    batch_vectors=args.batch_vectors, lr=args.lr, l1_coeff=args.l1, held_out=args.held_out,
                    max_vectors=args.max_vectors, seed=args.seed, save_to=args.out, progress=args.progress)
    if args.json:
        print(json.dumps({"path": str(args.out), **sae.config(), "meta": sae.meta}, indent=2))
        return 0
    _print_summary(sae.config(), sae.meta, f"saved to {args.out}")
    return 0


def _print_summary(config: dict[str, Any], meta: dict[str, Any], where: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    k = f", k={config['k']}" if config.get("k") else ""
    origin = f" on {meta['model_name']}:{meta['layer']}" if meta.get("layer") else ""
    console.print(f"SAE {config['n_latents']} latents ({config['activation']}{k}), {config['d_in']}-dim input"
                  f"{origin}, {meta.get('format', 'aim')} layout; {where}")
    metrics = meta.get("metrics")
    if metrics:
        console.print(f"held out ({metrics['vectors']} vectors from {meta.get('held_out_images', '?')} images): "
                      f"FVU {metrics['fvu']:.4f}  L0 {metrics['l0']:.2f}  dead {100 * metrics['dead_fraction']:.2f}%")
    training = meta.get("training") or {}
    if training:
        console.print(f"time: activations {training.get('collect_seconds', 0):.1f} s, training "
                      f"{training.get('train_seconds', 0):.1f} s ({training.get('steps', 0)} steps, "
                      f"{training.get('train_vectors_per_s', 0):,.0f} vectors/s)")
    history = meta.get("history") or []
    if history:
        table = Table(title="history (held out)", title_justify="left")
        for column in ("epoch", "step", "seconds", "train loss", "FVU", "L0", "dead %", "dead in training %"):
            table.add_column(column, justify="right")
        for row in history:
            table.add_row(str(row["epoch"]), str(row["step"]), f"{row['seconds']:.1f}", f"{row['train_loss']:.4f}",
                          f"{row['fvu']:.4f}", f"{row['l0']:.1f}", f"{100 * row['dead_fraction']:.2f}",
                          f"{100 * row['dead_in_training']:.2f}")
        console.print(table)


def run_info(args: argparse.Namespace) -> int:
    from aim_agent.sae import load_sae

    sae = load_sae(args.path)
    if args.json:
        print(json.dumps({"path": args.path, **sae.config(), "meta": sae.meta}, indent=2))
    else:
        _print_summary(sae.config(), sae.meta, f"from {args.path}")
    return 0
