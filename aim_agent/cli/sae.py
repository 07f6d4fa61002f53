"""``aim sae train``: fit a sparse autoencoder to a layer, so its latents can be interpreted as units."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("sae", help="sparse autoencoders over a layer (their latents are units)")
    sae_sub = parser.add_subparsers(dest="sae_command", metavar="SAE_COMMAND")
    train = sae_sub.add_parser(
        "train",
        help="train an SAE on a layer's activations over a dataset",
        description="Streams DATASET through MODEL, fits an SAE to the layer's spatial activation vectors "
        "and saves it to OUT. Then: aim interpret --model M --layer L --sae OUT --unit LATENT.",
    )
    train.add_argument("--model", required=True, help="model spec, as for `aim layers`")
    train.add_argument("--layer", required=True, help="layer name, as listed by `aim layers MODEL`")
    train.add_argument("--dataset", default=None, help="image folder or dataset name (default: world)")
    train.add_argument("--latents", type=int, required=True, help="number of SAE latents")
    train.add_argument("--activation", choices=("topk", "relu"), default="topk")
    train.add_argument("--k", type=int, default=None, help="active latents per vector (topk; default latents/16)")
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="folder to save the SAE in")
    train.set_defaults(func=run_train)
    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)


def run_train(args: argparse.Namespace) -> int:
    from aim_agent.config import cli_trust
    from aim_agent.models.probe import open_probe
    from aim_agent.sae import train_sae

    if args.latents < 1 or args.epochs < 1:
        raise ValueError("--latents and --epochs must be at least 1")
    with cli_trust(args, args.model):  # the person who typed the command chose this model
        probe = open_probe(args.model, args.layer)
    sae = train_sae(probe, args.dataset, args.latents, activation=args.activation, k=args.k,
                    epochs=args.epochs, seed=args.seed, save_to=args.out)
    history = ", ".join(f"{x:.4f}" for x in sae.meta.get("history", []))
    print(f"saved SAE with {args.latents} latents on {probe.model_name}:{probe.layer} to {args.out}")
    print(f"reconstruction error per epoch: {history}")
    return 0
