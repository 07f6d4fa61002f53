"""``aim eval spurious``: MAIA's spurious-feature removal (Section 5.1, Table 2, Appendix F2) on a model with a
spurious training correlation (the world's ``world-cnn-spawrious``: each animal on its own environment 95% of
the time in train; the shifted test shows only the other pairings).

1. Features: every unit of the final feature layer, averaged over space (what the classifier head reads),
   on an **unbalanced validation** set (drawn like train), the **shifted test** set and a small **balanced**
   set (every class on every environment).
2. ℓ1-regularised logistic regression on the validation set, its strength tuned until :data:`TOP` units have
   non-zero weights: the **ℓ1 top-50** units.
3. A scientist classifies each of them SELECTIVE or SPURIOUS with MAIA's task (only training-domain images:
   classes on the training environments), from its top validation exemplars onwards. The
   **exemplar-only** baseline keeps a unit when the describer's summary of its top exemplars names one class
   and no environment (MAIA's MILAN row).
4. Rows, each an accuracy on the shifted test: the original model; ℓ1 top-50; random subsets of the top-50 of
   AIM's size (mean ± sd over :data:`DRAWS` draws, unregularised); ℓ1 at AIM's sparsity (validation); AIM's
   kept units (unregularised); the exemplar-only kept units (unregularised); ℓ1 at AIM's sparsity fit on the
   balanced set.

Features are standardised on the set each model is fit on (MAIA: zero mean, unit variance). The evaluator
reads nothing of the task's answer: the shifted test's labels are the only ground truth it needs, and the
scientists see the unit, an image generator, the class names and the environments, never the pairings.
"""

from __future__ import annotations

import random
import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from aim_agent.eval.pages import Figure, Section, fmt, html_page, md_table
from aim_agent.eval.tasks import TaskAnswer, TaskScientist

TOP = 50
DRAWS = 100
EXEMPLARS = 8
Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------- fitting


def _sklearn() -> Any:
    try:
        from sklearn import linear_model, multiclass
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("aim eval spurious needs scikit-learn: pip install 'aim-agent[sae]' "
                          "(or pip install scikit-learn)") from exc
    return linear_model, multiclass


@dataclass
class Fitted:
    """A logistic regression on some units, with the standardisation of its training set."""

    units: list[int]
    model: Any
    mean: np.ndarray
    std: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict((x[:, self.units] - self.mean) / self.std))

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(x) == y).mean())


def fit(x: np.ndarray, y: np.ndarray, units: Sequence[int], *, l1_c: float | None = None, seed: int = 0) -> Fitted:
    """Logistic regression on columns ``units`` of ``x``, on standardised features: unregularised (lbfgs,
    multinomial), or ℓ1 with strength ``l1_c`` (one-vs-rest liblinear: exact coordinate descent, ~100x faster
    here than MAIA's saga, which needs thousands of epochs to settle its sparsity)."""
    lm, multiclass = _sklearn()
    cols = list(units)
    if not cols:
        raise ValueError("no units to fit on: give at least one")
    sub = x[:, cols]
    mean, std = sub.mean(axis=0), sub.std(axis=0) + 1e-6
    if l1_c is None:
        model = lm.LogisticRegression(penalty=None, solver="lbfgs", max_iter=3000)
    else:
        model = multiclass.OneVsRestClassifier(
            lm.LogisticRegression(penalty="l1", solver="liblinear", C=l1_c, max_iter=1000, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on near-separable data; accuracy tells
        model.fit((sub - mean) / std, y)
    return Fitted(cols, model, mean, std)


def nonzero_units(fitted: Fitted) -> list[int]:
    """The units of ``fitted`` with a non-zero weight for some class, largest weight norm first."""
    parts = getattr(fitted.model, "estimators_", None) or [fitted.model]
    norms = np.abs(np.vstack([np.atleast_2d(m.coef_) for m in parts])).sum(axis=0)
    order = np.argsort(-norms, kind="stable")
    return [fitted.units[i] for i in order if norms[i] > 0]


def l1_top(x: np.ndarray, y: np.ndarray, k: int, *, units: Sequence[int] | None = None, steps: int = 24,
           seed: int = 0) -> tuple[list[int], Fitted]:
    """ℓ1 logistic regression with its strength bisected (log scale) until ``k`` units have non-zero weights
    (MAIA F2); when no strength gives exactly ``k``, the smallest model with more, cut to its ``k`` largest.
    Returns the ``k`` units (largest weight first) and the model refit with that strength on them."""
    cols = list(units) if units is not None else list(range(x.shape[1]))
    if not 1 <= k <= len(cols):
        raise ValueError(f"k must be between 1 and {len(cols)}, not {k}")
    lo, hi = -4.0, 2.0
    best: tuple[float, list[int]] | None = None
    for _ in range(steps):
        mid = (lo + hi) / 2
        kept = nonzero_units(fit(x, y, cols, l1_c=10 ** mid, seed=seed))
        if len(kept) >= k and (best is None or len(kept) < len(best[1])):
            best = (10 ** mid, kept)
        if len(kept) == k:
            break
        lo, hi = (mid, hi) if len(kept) < k else (lo, mid)
    if best is None:  # even the weakest penalty keeps fewer: take all it keeps, ranked
        best = (10 ** hi, nonzero_units(fit(x, y, cols, l1_c=10 ** hi, seed=seed)) or cols)
    chosen = best[1][:k]
    return chosen, fit(x, y, chosen, l1_c=best[0], seed=seed)


# --------------------------------------------------------------------------------------------- rows


@dataclass
class Row:
    """One row of Table 2: an accuracy on the shifted test."""

    method: str
    units: int
    balanced: bool
    accuracy: float
    sd: float | None = None


@dataclass
class Split:
    """Features (N, U) and labels (N,) of one split."""

    x: np.ndarray
    y: np.ndarray


def table_rows(validation: Split, test: Split, balanced: Split | None, top: Sequence[int],
               kept: dict[str, Sequence[int]], *, original: float | None, draws: int = DRAWS,
               seed: int = 0) -> list[Row]:
    """Table 2's rows (module docstring) from features and the kept units of each method (``aim``, ...)."""
    rows: list[Row] = []
    if original is not None:
        rows.append(Row("original model (all units, its own head)", validation.x.shape[1], False, original))
    top50 = l1_top(validation.x, validation.y, len(top), units=top, seed=seed)[1]
    rows.append(Row(f"ℓ1 top {len(top)}", len(top), False, top50.accuracy(test.x, test.y)))
    k = len(kept.get("aim", []))
    if 0 < k < len(top):
        rng = random.Random(seed)
        accs = [fit(validation.x, validation.y, rng.sample(list(top), k)).accuracy(test.x, test.y)
                for _ in range(draws)]
        rows.append(Row(f"random {k} of the top {len(top)} ({draws} draws)", k, False,
                        statistics.fmean(accs), statistics.pstdev(accs)))
        rows.append(Row(f"ℓ1 top {k} (AIM's sparsity)", k, False,
                        l1_top(validation.x, validation.y, k, units=top, seed=seed)[1].accuracy(test.x, test.y)))
    for method, units in kept.items():
        if units:
            acc = fit(validation.x, validation.y, units).accuracy(test.x, test.y)
        else:  # nothing kept: the best a model without features can do is the majority class
            acc = float((test.y == np.bincount(validation.y).argmax()).mean())
        rows.append(Row(f"{method} (kept units, unregularised)", len(units), False, acc))
    if balanced is not None and k:
        units, model = l1_top(balanced.x, balanced.y, min(k, balanced.x.shape[1]), seed=seed)
        rows.append(Row(f"ℓ1 top {k}, balanced set", len(units), True, model.accuracy(test.x, test.y)))
    return [Row(r.method, r.units, r.balanced, round(r.accuracy, 4), None if r.sd is None else round(r.sd, 4))
            for r in rows]


# --------------------------------------------------------------------------------------------- selection


def exemplar_keeps(summary: str, classes: Sequence[str], environments: Sequence[str]) -> bool:
    """MAIA's MILAN row: keep a unit whose exemplar summary names exactly one class and no environment (its
    first sentence that names any of them, as the one-shot baseline reads it)."""
    from aim_agent.eval.baselines import one_shot_label
    from aim_agent.eval.truth import ConceptTruth, names

    vocab = [ConceptTruth(key=w, label=w, terms=[w, f"{w}s"]) for w in (*classes, *environments)]
    label = one_shot_label(summary, vocab)
    named_classes = [c for c in vocab[: len(classes)] if names(label, c)]
    named_envs = [e for e in vocab[len(classes):] if names(label, e)]
    return len(named_classes) == 1 and not named_envs


@dataclass
class UnitVerdict:
    """The scientist's and the baseline's verdicts on one unit."""

    unit: int
    aim: TaskAnswer
    exemplar_summary: str
    exemplar_keeps: bool
    exemplars: list[Any] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        aim = {k: v for k, v in asdict(self.aim).items() if k != "evidence"}
        aim["evidence"] = [{"prompt": o.prompt, "activation": o.activation} for o in self.aim.evidence]
        return {"unit": self.unit, "aim": aim, "exemplar_summary": self.exemplar_summary,
                "exemplar_keeps": self.exemplar_keeps}


# --------------------------------------------------------------------------------------------- the run


def layer_features(probe: Any, images: Sequence[Any], batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Spatial mean (the head's input) and spatial max of every unit of ``probe``'s layer: two (N, U) arrays."""
    import torch

    means, maxes = [], []
    for start in range(0, len(images), batch):
        with torch.inference_mode():
            out = probe.forward(list(images[start : start + batch])).float()
        flat = out.reshape(out.shape[0], out.shape[1], -1)
        means.append(flat.mean(dim=2).numpy())
        maxes.append(flat.amax(dim=2).numpy())
    return np.concatenate(means), np.concatenate(maxes)


def evaluate_spurious(
    *,
    model: str | None = None,
    n_validation: int = 1200,
    n_test: int = 800,
    n_balanced: int = 160,
    top: int = TOP,
    seed: int = 0,
    backend: str = "offline",
    draws: int = DRAWS,
    progress: Progress | None = None,
    scientist: TaskScientist | None = None,
) -> dict[str, Any]:
    """Run the whole protocol; the result as JSON data (``rows``, ``units``) plus the images for the page.
    ``scientist``: one already built (a chat model's, with its options); default the one ``backend`` names."""
    from aim_agent.eval.tasks import TaskQuestion, eval_task, task_scientist
    from aim_agent.images import ImageStore, use_store
    from aim_agent.models.probe import open_probe
    from aim_agent.plugins import plugin_manager
    from aim_agent.system import System

    say = progress or (lambda _line: None)
    task = eval_task("spurious", model)
    scientist = scientist or task_scientist(backend)
    features = open_probe(task.model, task.feature_layer)
    logits = open_probe(task.model, task.logits_layer)
    index = {c: i for i, c in enumerate(task.classes)}
    splits: dict[str, Split] = {}
    validation_images: list[Any] = []
    validation_max = np.zeros(0)
    original = None
    with use_store(ImageStore()):
        for split, n in (("validation", n_validation), ("test", n_test), ("balanced", n_balanced)):
            data = task.images(split, n, seed)
            mean, peak = layer_features(features, data.images)
            splits[split] = Split(mean, np.array([index[label] for label in data.labels]))
            if split == "validation":
                validation_images, validation_max = data.images, peak
            if split == "test":
                pred = layer_features(logits, data.images)[0].argmax(axis=1)
                original = float((pred == splits["test"].y).mean())
            say(f"{split}: {n} images, {mean.shape[1]} units of {task.feature_layer}")
        top_units, _ = l1_top(splits["validation"].x, splits["validation"].y, top, seed=seed)
        say(f"ℓ1 top {top} on the validation set: units {sorted(top_units)}")
        describer = plugin_manager().provider("describer", "world")
        text2image = plugin_manager().provider("text2image", "world")

        rendered: dict[tuple[tuple[str, ...], int], list[Any]] = {}

        def generate(prompts: list[str], image_seed: int) -> list[Any]:
            # the scientist asks the same prompts for every unit: render each set once
            key = (tuple(prompts), image_seed)
            if key not in rendered:
                rendered[key] = [g.image for g in text2image.generate(prompts, size=224,
                                                                        seed=seed * 1000 + image_seed)]
            return list(rendered[key])

        verdicts: list[UnitVerdict] = []
        for unit in top_units:
            system = System(features, unit)
            order = np.argsort(-validation_max[:, unit], kind="stable")[:EXEMPLARS]
            exemplars = system.overlays([validation_images[i] for i in order])
            summary = describer.summarize(exemplars)
            question = TaskQuestion(task="spurious", system=system, generate=generate, classes=task.classes,
                                    domain=task.domain, exemplars=exemplars,
                                    exemplar_activations=[float(validation_max[i, unit]) for i in order])
            answer = scientist.answer(question)
            keeps = exemplar_keeps(summary, task.classes, task.domain)
            verdicts.append(UnitVerdict(unit, answer, summary, keeps, exemplars))
            say(f"unit {unit}: {answer.verdict} ({answer.reasoning}); exemplar-only "
                f"{'keeps' if keeps else 'drops'} it ({summary!r})")
    kept = {"AIM": [v.unit for v in verdicts if v.aim.verdict == "SELECTIVE"],
            "exemplar-only": [v.unit for v in verdicts if v.exemplar_keeps]}
    rows = table_rows(splits["validation"], splits["test"], splits["balanced"], top_units,
                      {"aim": kept["AIM"], "exemplar-only": kept["exemplar-only"]}, original=original,
                      draws=draws, seed=seed)
    return {"evaluation": "spurious", "model": task.model, "layer": task.feature_layer, "seed": seed,
            "backend": backend, "sizes": {"validation": n_validation, "test": n_test, "balanced": n_balanced},
            "top": sorted(top_units), "kept": kept, "rows": [asdict(r) for r in rows],
            "units": [v.to_json() for v in verdicts], "_verdicts": verdicts}


HEADERS = ("selection", "# units", "balanced", "shifted test accuracy")


def rows_for_table(data: dict[str, Any]) -> list[list[Any]]:
    return [[r["method"], r["units"], "yes" if r["balanced"] else "no",
             fmt(r["accuracy"]) + (f" ± {fmt(r['sd'])}" if r["sd"] is not None else "")] for r in data["rows"]]


def markdown(data: dict[str, Any]) -> str:
    sizes = data["sizes"]
    lines = [f"# aim eval spurious: {data['model']} {data['layer']} (seed {data['seed']}, scientist "
             f"`{data['backend']}`)", "",
             f"Validation (unbalanced) {sizes['validation']}, shifted test {sizes['test']}, balanced "
             f"{sizes['balanced']} images. AIM kept {len(data['kept']['AIM'])} of {len(data['top'])} units, the "
             f"exemplar-only baseline {len(data['kept']['exemplar-only'])}.", "",
             md_table(HEADERS, rows_for_table(data)), "", "## Units", ""]
    rows = [[u["unit"], u["aim"]["verdict"], u["aim"]["reasoning"], "keep" if u["exemplar_keeps"] else "drop",
             u["exemplar_summary"]] for u in data["units"]]
    lines += [md_table(["unit", "AIM", "why", "exemplar-only", "exemplar summary"], rows), ""]
    return "\n".join(lines)


def page(data: dict[str, Any]) -> str:
    sections = []
    for v in data["_verdicts"]:
        figs = [Figure(im, f"exemplar {i + 1}") for i, im in enumerate(v.exemplars[:4])]
        measured = sorted((o for o in v.aim.evidence if o.image is not None), key=lambda o: -o.activation)
        figs += [Figure(o.image, f"{o.prompt}: {o.activation:.2f}") for o in measured[:8] + measured[-4:]]
        sections.append(Section(f"unit {v.unit}: {v.aim.verdict}", v.aim.reasoning, figs))
    return html_page(f"spurious-feature removal: {data['model']}", [("shifted test", HEADERS, rows_for_table(data))],
                     sections)
