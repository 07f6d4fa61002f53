"""Training the world CNNs: ``train(task, out, epochs, n_train, seed)``.

``aim world train --task classify|spawrious|bias`` runs this with the settings the shipped
weights were made with (:data:`TASKS`), so the files in ``aim_world/weights`` can be
reproduced (up to floating-point non-determinism of multi-threaded CPU kernels).

Images are rendered at 224 px and go through the same :func:`aim_world.cnn.preprocess` as at
inference (resize to the model's input size). Training data is a fixed set of ``n_train``
scenes, augmented by horizontal flips and small shifts; each task has held-out test sets
whose accuracies are written to the weights' ``.json`` sidecar:

- ``classify``: a fresh test set of the same distribution;
- ``spawrious``: ``test_in_distribution`` (animals on their training backgrounds 95% of the
  time) and ``test_shifted`` (only the other pairings); the drop between them is the
  spurious background reliance the model learned;
- ``bias``: an unbiased test set, with per-bias numbers (accuracy on the class without its
  feature, and how often other classes shown with the feature are mistaken for it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aim_world import datasets as ds
from aim_world.cnn import INPUT_SIZE, WIDTHS, WorldCNN, normalize, save_model, to_array, weights_path

RENDER_SIZE = 224


def _print(message: str) -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class TaskSettings:
    """What a shipped model was trained with (the defaults of ``aim world train``)."""

    epochs: int
    n_train: int
    n_test: int
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    input_size: int = INPUT_SIZE


TASKS: dict[str, TaskSettings] = {
    "classify": TaskSettings(epochs=8, n_train=5000, n_test=1000),
    "spawrious": TaskSettings(epochs=10, n_train=3000, n_test=800),
    "bias": TaskSettings(epochs=8, n_train=5000, n_test=2000),
}


def render_set(samples: Iterable[ds.Sample], classes: tuple[str, ...], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render samples at 224 px, resize to ``size``: ``uint8 (N, 3, size, size)`` and labels ``(N,)``."""
    from aim_world.render import render

    index = {c: i for i, c in enumerate(classes)}
    images, labels = [], []
    for sample in samples:
        images.append(to_array(render(sample.scene, RENDER_SIZE).image, size))
        labels.append(index[sample.label])  # type: ignore[index]
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long)


def augment(x: torch.Tensor, gen: torch.Generator, shift: int = 4) -> torch.Tensor:
    """Random horizontal flips per image, and one random shift (edge-padded) per batch."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x).float()
    if shift:
        dx, dy = (int(v) for v in torch.randint(0, 2 * shift + 1, (2,), generator=gen))
        x = F.pad(x, (shift, shift, shift, shift), mode="replicate")[:, :, dy : dy + h, dx : dx + w]
    return x


@torch.no_grad()
def logits(model: WorldCNN, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The model's logits on uint8 images ``x``, in batches, without gradients."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(normalize(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])


def predict(model: WorldCNN, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return logits(model, x, batch_size).argmax(1)


def accuracy(model: WorldCNN, x: torch.Tensor, y: torch.Tensor) -> float:
    return round(float((predict(model, x) == y).float().mean()), 4)


def fit(
    model: WorldCNN,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: TaskSettings,
    seed: int,
    log: Callable[[str], None] = _print,
) -> None:
    """Train ``model`` on uint8 images ``x`` with AdamW and a one-cycle schedule."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(x) / settings.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch, pct_start=0.2
    )
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        t0 = time.time()
        for start in range(0, len(x), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            xb = normalize(augment(x[idx], gen))
            yb = y[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=settings.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            total += len(idx)
        log(f"epoch {epoch + 1}/{settings.epochs}: loss {loss_sum / total:.3f}, "
            f"train acc (augmented) {correct / total:.3f}, {time.time() - t0:.0f} s")


def _eval_sets(task: str, n_test: int, seed: int) -> dict[str, Iterable[ds.Sample]]:
    test_seed = seed + 1_000
    if task == "classify":
        return {"test": ds.samples("classify", n_test, test_seed, "test")}
    if task == "spawrious":
        return {
            "test_in_distribution": ds.spawrious_in_distribution(n_test, test_seed),
            "test_shifted": ds.spawrious_samples(n_test, test_seed, "test"),
        }
    if task == "bias":
        return {
            "test_in_distribution": ds.bias_samples(n_test, test_seed + 1, "train"),
            "test": ds.bias_samples(n_test, test_seed, "test"),
        }
    raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")


def bias_report(model: WorldCNN, samples: list[ds.Sample], x: torch.Tensor, y: torch.Tensor) -> list[dict[str, Any]]:
    """Per planted bias, on an unbiased set: how the model does with and without the feature."""
    pred = predict(model, x)
    classes = ds.CLASSIFY_CLASSES
    rows = []
    for bias in ds.PLANTED_BIASES:
        c = classes.index(bias.cls)
        has = torch.tensor([ds.feature_present(s.scene, bias) for s in samples])
        is_c = y == c
        def rate(mask: torch.Tensor, hit: torch.Tensor) -> float | None:
            n = int(mask.sum())
            return round(float(hit[mask].float().mean()), 4) if n else None
        rows.append({
            "class": bias.cls,
            "feature": f"{bias.feature}={bias.value}",
            "accuracy_class_with_feature": rate(is_c & has, pred == c),
            "accuracy_class_without_feature": rate(is_c & ~has, pred == c),
            "other_classes_with_feature_predicted_as_class": rate(~is_c & has, pred == c),
            "other_classes_without_feature_predicted_as_class": rate(~is_c & ~has, pred == c),
        })
    return rows


#: class scenes per planted bias in the counterfactual measurement (each rendered with and without its feature)
TWINS_PER_BIAS = 300
TWINS_SEED = 50_000  # far from the training, test and evaluation-task seeds


def counterfactual_report(model: WorldCNN, input_size: int = INPUT_SIZE, n: int = TWINS_PER_BIAS,
                          seed: int = TWINS_SEED) -> list[dict[str, Any]]:
    """Per planted bias, how much the model needs the feature: ``n`` unbiased test scenes of the class, each
    rendered as counterfactual twins with and without the feature (:func:`aim_world.datasets.feature_twins`).

    Paired, this measures what the model learned much more tightly than splitting an unbiased test set by
    whether the feature happened to be there (where a feature with a 15% rate leaves ~15 images of a class).
    ``wins``: twins the model gets right only with the feature; ``losses``: only without it."""
    classes = ds.CLASSIFY_CLASSES
    rows = []
    for k, bias in enumerate(ds.PLANTED_BIASES):
        c = classes.index(bias.cls)
        rng = np.random.default_rng([seed, k])
        scenes = [s.scene for s in ds.bias_samples(n * len(classes), seed + k, "test") if s.label == bias.cls][:n]
        twins = [ds.feature_twins(s, bias, rng) for s in scenes]
        results = []
        for present in (0, 1):
            x, _ = render_set([ds.Sample(t[1 - present], bias.cls) for t in twins], classes, input_size)
            out = logits(model, x)
            results.append((out.argmax(1) == c, torch.softmax(out, 1)[:, c]))
        (hit_without, p_without), (hit_with, p_with) = results
        rows.append({
            "class": bias.cls,
            "feature": f"{bias.feature}={bias.value}",
            "n": len(twins),
            "accuracy_with_feature": round(float(hit_with.float().mean()), 4),
            "accuracy_without_feature": round(float(hit_without.float().mean()), 4),
            "p_class_with_feature": round(float(p_with.mean()), 4),
            "p_class_without_feature": round(float(p_without.mean()), 4),
            "wins": int((hit_with & ~hit_without).sum()),
            "losses": int((hit_without & ~hit_with).sum()),
            "seed": seed,
        })
    return rows


def measure_twins(path: str | Path | None = None, n: int = TWINS_PER_BIAS) -> list[dict[str, Any]]:
    """Measure a trained bias model on counterfactual twins (:func:`counterfactual_report`) and record the
    result in its ``.json`` sidecar (``accuracy.counterfactual``), without training; ``path`` defaults to the
    shipped ``bias`` weights."""
    import json

    from aim_agent.files import atomic_write
    from aim_world.cnn import load_weights

    weights = Path(path).expanduser() if path is not None else weights_path("bias")
    model, info = load_weights(weights)
    if info.get("task") != "bias":
        raise ValueError(f"{weights} holds a {info.get('task')!r} model; counterfactual twins measure a bias model")
    rows = counterfactual_report(model, int(info.get("input_size", INPUT_SIZE)), n)
    info.setdefault("accuracy", {})["counterfactual"] = rows
    atomic_write(weights.with_suffix(".json"), (json.dumps(info, indent=2) + "\n").encode())
    return rows


def train(
    task: str,
    out: str | Path | None = None,
    epochs: int | None = None,
    n_train: int | None = None,
    seed: int = 0,
    *,
    n_test: int | None = None,
    threads: int = 2,
    log: Callable[[str], None] = _print,
) -> dict[str, Any]:
    """Train the world CNN for ``task`` and write ``out`` (.safetensors + .json); returns the info.

    ``out`` defaults to the shipped file ``aim_world/weights/<task>.safetensors``. Unset
    ``epochs``/``n_train``/``n_test`` take the shipped settings (:data:`TASKS`).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    base = TASKS[task]
    settings = TaskSettings(**{**asdict(base), **{k: v for k, v in
                               {"epochs": epochs, "n_train": n_train, "n_test": n_test}.items() if v is not None}})
    out_path = Path(out).expanduser() if out is not None else weights_path(task)
    if out_path.suffix != ".safetensors":  # a folder
        out_path = out_path / f"{task}.safetensors"
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    classes = ds.classes_of(task)
    assert classes is not None
    started = time.time()
    cpu_started = time.process_time()

    log(f"rendering {settings.n_train} training images ({task}) ...")
    train_samples = list(ds.samples(task, settings.n_train, seed, "train"))
    x, y = render_set(train_samples, classes, settings.input_size)
    eval_data = {}
    for name, gen in _eval_sets(task, settings.n_test, seed).items():
        s = list(gen)
        eval_data[name] = (s, *render_set(s, classes, settings.input_size))
    render_s = time.time() - started
    log(f"rendered in {render_s:.0f} s; training {settings.epochs} epochs on {len(x)} images ...")

    model = WorldCNN(len(classes), WIDTHS)
    t_fit = time.time()
    fit(model, x, y, settings, seed, log)
    fit_s = time.time() - t_fit
    model.eval()

    metrics: dict[str, Any] = {"train": accuracy(model, x, y)}
    for name, (_, xt, yt) in eval_data.items():
        metrics[name] = accuracy(model, xt, yt)
    if task == "spawrious":
        metrics["drop_in_to_shifted"] = round(metrics["test_in_distribution"] - metrics["test_shifted"], 4)
    if task == "bias":
        s, xt, yt = eval_data["test"]
        metrics["biases"] = bias_report(model, s, xt, yt)
        metrics["counterfactual"] = counterfactual_report(model, settings.input_size)
    total_s = time.time() - started
    cpu_s = time.process_time() - cpu_started
    info: dict[str, Any] = {
        "model": {"classify": "world-cnn", "spawrious": "world-cnn-spawrious", "bias": "world-cnn-bias"}[task],
        "task": task,
        "classes": list(classes),
        "input_size": settings.input_size,
        "render_size": RENDER_SIZE,
        "widths": list(WIDTHS),
        "preprocess": "RGB, bilinear resize to input_size, (x/255 - 0.5) / 0.25",
        "accuracy": metrics,
        "training": {
            **asdict(settings),
            "seed": seed,
            "threads": threads,
            "augmentation": "horizontal flip per image, shift up to 4 px per batch",
            "optimizer": "AdamW + OneCycle",
            "render_seconds": round(render_s, 1),
            "fit_seconds": round(fit_s, 1),
            "total_seconds": round(total_s, 1),
            "cpu_seconds": round(cpu_s, 1),
            "torch": torch.__version__,
            "command": f"aim world train --task {task} --seed {seed}",
        },
    }
    if task == "spawrious":
        info["spurious_pairs"] = ds.SPAWRIOUS_PAIRS
        info["spurious_correlation"] = ds.SPAWRIOUS_CORRELATION
    if task == "bias":
        info["planted_biases"] = [asdict(b) for b in ds.PLANTED_BIASES]
    save_model(model, out_path, info)
    log(f"accuracy: {metrics}")
    log(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.1f} MB) in {total_s:.0f} s ({cpu_s:.0f} CPU-seconds)")
    return info
