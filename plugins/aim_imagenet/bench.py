"""ImageNet models and tagger on the sample photos: top-1/top-5, the tagger's scores, seconds per 100 photos.

``aim bench imagenet`` (hook ``aim_benchmarks``). Every model runs over the anonymised view of the sample
(the dataset ``imagenet-sample``), as the exemplar engine and the tagger see it; ``labels.json`` is read only
to score, after the pass. The tagger's numbers come from :func:`aim_imagenet.tagger.tag_probabilities` on the
same probabilities, which is what :class:`~aim_imagenet.tagger.PhotoTagger` computes for a whole photo.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

#: the benchmark's name: ``aim bench imagenet``
name = "imagenet"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="efficientnet-lite0,efficientnet-lite2",
                        help="comma-separated models (default both Lite models)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos of the view (default all)")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per forward pass (default 32)")


def score(probs: np.ndarray, truth: list[str]) -> dict[str, float]:
    """Top-1/top-5 of class probabilities ``(N, 1000)`` against true wnids, and the tagger's scores on them."""
    from aim_imagenet.tagger import tag_probabilities
    from aim_imagenet.wordnet import taxonomy

    tax = taxonomy()
    index = np.array([tax.index(w) for w in truth])
    top5 = np.argsort(-probs, axis=1)[:, :5]
    taggings = tag_probabilities(probs, tax)
    named = [w in [c for c, _ in t.classes] for t, w in zip(taggings, truth, strict=True)]
    parent = [bool(set(tax.parents(w)) & {k for k, _ in t.kinds}) for t, w in zip(taggings, truth, strict=True)]
    return {
        "top1": float((top5[:, 0] == index).mean()),
        "top5": float((top5 == index[:, None]).any(axis=1).mean()),
        "tagger_true_class_named": float(np.mean(named)),
        "tagger_kinds_include_parent": float(np.mean(parent)),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from aim_agent.exemplars.dataset import resolve_dataset
    from aim_imagenet.models import load_efficientnet
    from aim_imagenet.photos import PhotoView

    folder = resolve_dataset("imagenet-sample")
    labels = PhotoView(folder.root.parent).labels()
    files = folder.files[: args.limit] if args.limit else folder.files
    truth = [labels[f].wnid or "" for f in files]
    if not all(truth):
        raise ValueError("the photo source has photos without a wnid in their name: this benchmark needs "
                         "<wnid>_<name> files (the ImageNet sample)")
    images = [folder.load(i, register=False) for i in range(len(files))]
    out: dict[str, Any] = {"photos": len(files), "torch_threads": torch.get_num_threads()}
    for arch in args.models.split(","):
        model = load_efficientnet(arch.strip())
        load, wall, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
        batches = []
        with torch.no_grad():
            for lo in range(0, len(images), args.batch_size):
                batches.append(model.module(model.preprocess(images[lo:lo + args.batch_size])).softmax(-1))
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        measured = {**score(torch.cat(batches).numpy(), truth),
                    "s_per_100_photos": round(seconds / len(images) * 100, 2),
                    "cpu_s_per_100_photos": round(cpu_seconds / len(images) * 100, 2), "load_average": load}
        out.update({f"{arch} {key}": value for key, value in measured.items()})
    return out
