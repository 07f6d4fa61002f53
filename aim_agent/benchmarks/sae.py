"""AIM's SAE trainer next to a reference dictionary learner, on the same activations, at matched sparsity.

Collects the activation vectors of ``--layer`` of ``--model`` over ``--dataset`` once (a tenth
of the images held out, :func:`aim_agent.sae.collect_activations`), then trains

- **ours**: a TopK SAE (:func:`aim_agent.sae.fit_sae`: unit-norm decoder, AuxK) with ``k``
  active latents;
- **reference**: scikit-learn's ``MiniBatchDictionaryLearning`` with the same number of atoms,
  fitted on ``--ref-vectors`` of the same training vectors (its sparse coding costs far more
  per vector; ``0`` fits on all of them), encoding with orthogonal matching pursuit at exactly
  ``k`` non-zero coefficients (the same L0).

Both see the activations centred by the training mean and divided by the same scale, and are
measured on the same held-out vectors with one definition (:func:`aim_agent.sae.train.
reconstruction_metrics`): FVU, L0 and dead fraction (latents or atoms used by no held-out
vector), and vectors per second for training and for encoding, wall clock and CPU time (all
threads of this process), in one run; ratios are ours over the reference.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from typing import Any

import torch

DEFAULT_MODEL, DEFAULT_LAYER = "world-cnn", "conv4"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model spec (default {DEFAULT_MODEL})")
    parser.add_argument("--layer", default=DEFAULT_LAYER, help=f"layer (default {DEFAULT_LAYER})")
    parser.add_argument("--dataset", default=None, help="image folder or dataset name (default: world)")
    parser.add_argument("--latents", type=int, default=None, help="latents and atoms (default 8 x layer width)")
    parser.add_argument("--k", type=int, default=None, help="active latents per vector (default latents/16, <= 32)")
    parser.add_argument("--epochs", type=int, default=5, help="our training epochs (default 5)")
    parser.add_argument("--batch-vectors", type=int, default=2048, help="our vectors per step (default 2048)")
    parser.add_argument("--ref-vectors", type=int, default=16384,
                        help="training vectors the reference fits on (default 16384; 0: all)")
    parser.add_argument("--ref-batch", type=int, default=256, help="reference minibatch size (default 256)")
    parser.add_argument("--ref-alpha", type=float, default=1.0,
                        help="reference L1 penalty while fitting the dictionary (default 1.0)")
    parser.add_argument("--ref-epochs", type=int, default=1, help="reference passes over its vectors (default 1)")
    parser.add_argument("--seed", type=int, default=0)


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        from sklearn.decomposition import MiniBatchDictionaryLearning
    except ImportError as exc:
        raise ImportError("aim bench sae needs scikit-learn for its reference: pip install 'aim-agent[sae]'") from exc
    from aim_agent.config import cli_trust
    from aim_agent.models.probe import open_probe
    from aim_agent.sae.model import default_k
    from aim_agent.sae.train import TrainSettings, collect_activations, fit_sae, reconstruction_metrics

    with cli_trust(args, args.model):  # `aim bench sae --model M`: the person chose M
        probe = open_probe(args.model, args.layer)
    acts, collect_s, _ = _timed(lambda: collect_activations(probe, args.dataset, seed=args.seed, progress=False))
    train, held = acts.train, acts.held_out
    latents = args.latents or 8 * acts.d_in
    k = min(latents, args.k or default_k(latents))

    # ours
    settings = TrainSettings(n_latents=latents, activation="topk", k=k, epochs=args.epochs,
                             batch_vectors=args.batch_vectors, seed=args.seed)
    fit, ours_wall, ours_cpu = _timed(lambda: fit_sae(train, held, settings, progress=False))
    sae = fit.sae
    with torch.no_grad():
        _, encode_wall, encode_cpu = min((_timed(lambda: sae.encode(held)) for _ in range(3)), key=lambda t: t[1])
    ours = {
        **fit.metrics.as_dict(),
        "train_s": round(ours_wall, 3), "train_cpu_s": round(ours_cpu, 3),
        "train_vectors": int(train.shape[0]), "epochs": args.epochs,
        "train_vectors_per_s": round(train.shape[0] * args.epochs / ours_wall, 1),
        "encode_s": round(encode_wall, 5), "encode_vectors_per_s": round(held.shape[0] / encode_wall, 1),
        "encode_cpu_s": round(encode_cpu, 5),
    }

    # the reference, on the same (normalised) vectors
    mean = train.mean(0)
    scale = float((train[:65536] - mean).pow(2).mean().sqrt().clamp_min(1e-6))
    generator = torch.Generator().manual_seed(args.seed)
    subset = train[torch.randperm(train.shape[0], generator=generator)]
    if args.ref_vectors:
        subset = subset[: args.ref_vectors]
    x_ref = ((subset - mean) / scale).numpy()
    h_ref = ((held - mean) / scale).numpy()
    model = MiniBatchDictionaryLearning(
        n_components=latents, alpha=args.ref_alpha, batch_size=min(args.ref_batch, x_ref.shape[0]),
        max_iter=args.ref_epochs, fit_algorithm="lars", transform_algorithm="omp", transform_n_nonzero_coefs=k,
        random_state=args.seed, tol=0.0, max_no_improvement=None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the L1 solver's convergence chatter
        _, ref_wall, ref_cpu = _timed(lambda: model.fit(x_ref))
        codes, code_wall, code_cpu = _timed(lambda: model.transform(h_ref))
    codes_t = torch.from_numpy(codes).float()
    recon = codes_t @ torch.from_numpy(model.components_).float() * scale + mean
    active = codes_t != 0
    ref_metrics = reconstruction_metrics(held, recon, float(active.sum(1).float().mean()), active.any(0))
    reference = {
        **ref_metrics.as_dict(),
        "train_s": round(ref_wall, 3), "train_cpu_s": round(ref_cpu, 3),
        "train_vectors": int(x_ref.shape[0]), "epochs": args.ref_epochs,
        "train_vectors_per_s": round(x_ref.shape[0] * args.ref_epochs / ref_wall, 1),
        "encode_s": round(code_wall, 5), "encode_vectors_per_s": round(held.shape[0] / code_wall, 1),
        "encode_cpu_s": round(code_cpu, 5),
        "method": f"sklearn MiniBatchDictionaryLearning (lars fit, alpha {args.ref_alpha}) + OMP transform, "
                  f"{k} non-zero coefficients",
    }
    total_s = collect_s + ours_wall
    return {
        "model": probe.model_name, "layer": probe.layer, "dataset": acts.dataset, "d_in": acts.d_in,
        "latents": latents, "k": k, "images": acts.images, "held_out_images": acts.held_out_images,
        "train_vectors": int(train.shape[0]), "held_out_vectors": int(held.shape[0]),
        "collect_s": round(collect_s, 3), "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "ours": ours, "reference": reference,
        "ratio_fvu_ours_over_reference": round(ours["fvu"] / max(reference["fvu"], 1e-12), 3),
        "ratio_train_vectors_per_s_ours_over_reference": round(
            ours["train_vectors_per_s"] / max(reference["train_vectors_per_s"], 1e-12), 2),
        "ratio_encode_vectors_per_s_ours_over_reference": round(
            ours["encode_vectors_per_s"] / max(reference["encode_vectors_per_s"], 1e-12), 2),
        "ours_collect_plus_train_s": round(total_s, 2),
        "target": "FVU <= 0.15, L0 <= 32, dead < 10%, activations + training < 300 s",
        "meets_target": bool(ours["fvu"] <= 0.15 and ours["l0"] <= 32 and ours["dead_fraction"] < 0.10
                             and total_s < 300),
    }
