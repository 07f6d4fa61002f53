"""``aim photos eval``: how right AIM is on a real ImageNet model and real photos.

- **classifier** (units with known meaning): seeded random output units of EfficientNet-Lite0, each
  meaning its ImageNet class; all sample photos are the pool. A label is *strict* when it names the class
  (a lemma of its synset), *near* when it names the class, its WordNet parent or a sibling (a class or
  synset sharing a parent); the judge is the sentence embedder's similarity of label and class name.
  Baselines: the tag the describer gives the top exemplar, the tag most correlated with the unit over the
  pool (CLIP-Dissect-like), and the one-shot reading of the exemplars (their most shared concept).
- **hidden** (units of intermediate blocks): seeded random units, interpreted on the *discovery* half; the
  label is then scored on the *held-out* half, MAIA's predictive evaluation with photos: the held-out
  photos whose true class lies under the label's WordNet synsets (the photos the label predicts to fire)
  against all other held-out photos, as the AUC of the unit's activation. AIM vs the exemplar-only label
  (the one-shot reading) and the most-correlated tag, paired per unit, with the sign test.

Nothing here is shown to the scientist: true classes come from the photo view's ``labels.json`` (file
names of the source), read only after every run of a layer has finished.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aim_imagenet.wordnet import Taxonomy, taxonomy

#: the model studied and the tagger that describes for it (a different model: it cannot read the answer)
MODEL = "efficientnet-lite0"
DESCRIBER = "photo-tagger-lite2"
CLASSIFIER_LAYER = "_fc"
Say = Callable[[str], None]


# ----------------------------------------------------------------------------------------------------------
# activations of a whole folder, once per (model, layer, folder)


def folder_activations(model: str, layer: str, folder: Path, *, cache_dir: Path,
                       say: Say) -> tuple[list[str], np.ndarray]:
    """Every image's spatial-max activation of every unit of ``layer``: (files, array (N, U)); cached as .npy."""
    from aim_agent.exemplars import ImageFolder
    from aim_agent.models.probe import open_probe

    images = ImageFolder(folder)
    probe = open_probe(model, layer)
    key = hashlib.blake2b(f"{probe.fingerprint()}\0{images.fingerprint()}".encode(), digest_size=10).hexdigest()
    path = cache_dir / f"acts-{key}.npy"
    if path.is_file():
        return images.files, np.load(path, allow_pickle=False)
    rows: list[np.ndarray] = []
    for batch in images.batches(32):
        out = probe.forward(batch.images).detach().float()
        rows.append(out.flatten(2).amax(dim=2).numpy() if out.dim() == 4 else out.numpy())
        say(f"activations of {layer}: {batch.stop} of {len(images)} images")
    acts = np.concatenate(rows).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, acts, allow_pickle=False)
    tmp.replace(path)
    return images.files, acts


# ----------------------------------------------------------------------------------------------------------
# labels -> synsets, and the baselines


def label_concept(label: str) -> str:
    """The main concept of a label: its first alternative (``tabby OR car`` -> ``tabby``)."""
    return label.split(" OR ")[0].split(",")[0].strip()


def label_synsets(label: str, tax: Taxonomy) -> list[str]:
    return tax.lookup(label_concept(label)) if label else []


def exemplar_only(descriptions: Sequence[str], activations: Sequence[float]) -> str:
    """The one-shot label: the concept the exemplars' descriptions share most (no experiment)."""
    from aim_agent.scientist.reading import read_exemplars

    reading = read_exemplars(descriptions, activations)
    top = reading.candidates(limit=1)
    return reading.name(top[0]) if top else ""


def most_correlated(pool_terms: list[dict[str, float]], acts: np.ndarray, names: dict[str, str]) -> str:
    """The describer term whose strength over the pool correlates best with the unit (CLIP-Dissect-like)."""
    terms = sorted({t for d in pool_terms for t in d})
    if not terms:
        return ""
    matrix = np.zeros((len(pool_terms), len(terms)), dtype=np.float32)
    col = {t: j for j, t in enumerate(terms)}
    for i, d in enumerate(pool_terms):
        for t, v in d.items():
            matrix[i, col[t]] = v
    support = (matrix > 0).sum(axis=0)
    x = matrix - matrix.mean(axis=0)
    y = acts - acts.mean()
    denom = np.sqrt((x**2).sum(axis=0) * (y**2).sum()) + 1e-9
    corr = (x * y[:, None]).sum(axis=0) / denom
    corr[support < 1] = -1.0
    best = terms[int(np.argmax(corr))]
    return names.get(best, best)


# ----------------------------------------------------------------------------------------------------------
# runs


@dataclass
class UnitRun:
    """One unit's run, as the evaluation reads it."""

    unit: int
    label: str
    confidence: float
    forced: bool
    exemplar_descriptions: list[str]
    exemplar_activations: list[float]
    seconds: float
    run_dir: str


def run_unit(layer: str, unit: int, dataset: str, runs_dir: Path, *, mode: str, max_rounds: int, say: Say) -> UnitRun:
    """Interpret one unit with the concept scientist (the finished run is reused: the evaluation resumes)."""
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.record import RunRecordError, read_run_record
    from aim_agent.agent.runner import run_interpret

    run_id = f"{layer.strip('_').replace('.', '-')}-u{unit}"
    run_dir = runs_dir / run_id
    start = time.perf_counter()
    try:
        record = read_run_record(run_dir)
    except RunRecordError:
        record = None
    if record is None or record.conclusion is None:
        config = RunConfig(model=MODEL, layer=layer, unit=unit, describer=DESCRIBER, exemplar_dataset=dataset,
                           backend=BackendSpec(provider="concepts"), mode=mode, max_rounds=max_rounds,
                           run_id=run_id, runs_dir=str(runs_dir))
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # an unfinished run of an earlier evaluation: start it again
        run_interpret(config)
        record = read_run_record(run_dir)
    conclusion = record.conclusion
    return UnitRun(unit=unit, label=conclusion.labels[0] if conclusion and conclusion.labels else "",
                   confidence=conclusion.confidence if conclusion else 0.0, forced=bool(record.forced),
                   exemplar_descriptions=list(record.exemplars.descriptions),
                   exemplar_activations=list(record.exemplars.activations),
                   seconds=round(time.perf_counter() - start, 1), run_dir=str(run_dir))


# ----------------------------------------------------------------------------------------------------------
# (a) classifier units


@dataclass
class ClassifierRow:
    unit: int
    truth: str
    labels: dict[str, str]
    strict: dict[str, bool]
    near: dict[str, bool]
    judge: dict[str, float]
    confidence: float
    forced: bool
    seconds: float


@dataclass
class ClassifierEvaluation:
    seed: int
    rows: list[ClassifierRow] = field(default_factory=list)

    METHODS = ("aim", "top_exemplar_tag", "most_correlated", "one_shot")

    def summary(self) -> dict[str, dict[str, float]]:
        n = max(1, len(self.rows))
        out: dict[str, dict[str, float]] = {}
        for m in self.METHODS:
            out[m] = {"strict": sum(r.strict[m] for r in self.rows) / n, "near": sum(r.near[m] for r in self.rows) / n,
                      "judge": float(np.mean([r.judge[m] for r in self.rows])) if self.rows else 0.0,
                      "words": float(np.mean([len(r.labels[m].split()) for r in self.rows])) if self.rows else 0.0}
        return out


def near_match(label_ids: Sequence[str], wnid: str, tax: Taxonomy) -> bool:
    """The label names the class, its parent, or a sibling (a synset sharing a parent with the class)."""
    parents = set(tax.parents(wnid))
    return any(w == wnid or w in parents or parents & set(tax.parents(w)) for w in label_ids)


def _judge_scores(labels: list[str], truths: list[str]) -> list[float]:
    try:
        from aim_agent.eval.judge import JudgeUnavailable, load_judge

        judge = load_judge()
    except (ImportError, JudgeUnavailable):
        return [float("nan")] * len(labels)
    sims = judge.similarity([x or "nothing" for x in labels], truths)
    return [round(float(sims[i, i]), 3) for i in range(len(labels))]


def evaluate_classifier(n: int, seed: int, runs_dir: Path, cache_dir: Path, *, mode: str = "tools",
                        max_rounds: int = 6, say: Say = lambda _: None) -> ClassifierEvaluation:
    """(a): ``n`` seeded random output units of Lite0 over all sample photos."""
    from aim_agent.exemplars import resolve_dataset

    tax = taxonomy()
    units = sorted(random.Random(seed).sample(range(len(tax.classes)), n))
    folder = resolve_dataset("imagenet-sample")
    _, acts = folder_activations(MODEL, CLASSIFIER_LAYER, folder.root, cache_dir=cache_dir, say=say)
    pool, names = _described(folder, cache_dir)
    pool_terms = [item.terms for item in pool.items]
    evaluation = ClassifierEvaluation(seed=seed)
    for k, unit in enumerate(units, 1):
        run = run_unit(CLASSIFIER_LAYER, unit, "imagenet-sample", runs_dir, mode=mode, max_rounds=max_rounds, say=say)
        top = int(np.argmax(acts[:, unit]))
        top_tag = _first_term(pool.items[top].description)
        labels = {"aim": run.label, "top_exemplar_tag": top_tag,
                  "most_correlated": most_correlated(pool_terms, acts[:, unit], names),
                  "one_shot": exemplar_only(run.exemplar_descriptions, run.exemplar_activations)}
        wnid = tax.classes[unit].wnid
        strict = {m: wnid in label_synsets(x, tax) for m, x in labels.items()}
        near = {m: near_match(label_synsets(x, tax), wnid, tax) for m, x in labels.items()}
        evaluation.rows.append(ClassifierRow(unit=unit, truth=tax.classes[unit].name, labels=labels, strict=strict,
                                             near=near, judge={}, confidence=run.confidence, forced=run.forced,
                                             seconds=run.seconds))
        say(f"classifier {k}/{len(units)}: unit {unit} ({tax.classes[unit].name}) -> {run.label!r} "
            f"strict={strict['aim']} near={near['aim']} ({run.seconds:.0f} s)")
    truths = [r.truth for r in evaluation.rows]
    for m in ClassifierEvaluation.METHODS:
        for r, score in zip(evaluation.rows, _judge_scores([r.labels[m] for r in evaluation.rows], truths),
                            strict=True):
            r.judge[m] = score
    return evaluation


def _described(folder: Any, cache_dir: Path) -> tuple[Any, dict[str, str]]:
    """The folder's described pool (the tagger's words for every photo) and each term as the tagger writes it."""
    from aim_agent.exemplars.pool import described_pool
    from aim_agent.plugins import plugin_manager
    from aim_agent.terms import named, normal

    pool = described_pool(folder, plugin_manager().provider("describer", DESCRIBER), cache_dir=cache_dir)
    return pool, {normal(p): p for item in pool.items for p in named(item.description)}


def _first_term(description: str) -> str:
    from aim_agent.terms import named

    names = named(description)
    return names[0] if names else description.split(",")[0].strip()


# ----------------------------------------------------------------------------------------------------------
# (b) hidden units, predictive on the held-out half


@dataclass
class HiddenRow:
    unit: int
    labels: dict[str, str]
    heldout_auc: dict[str, float]
    predicted: dict[str, int]
    confidence: float
    forced: bool
    seconds: float


@dataclass
class HiddenEvaluation:
    layer: str
    seed: int
    rows: list[HiddenRow] = field(default_factory=list)

    METHODS = ("aim", "exemplar_only", "most_correlated")

    def summary(self) -> dict[str, Any]:
        from aim_agent.eval.predictive import sign_test

        out: dict[str, Any] = {}
        for m in self.METHODS:
            scores = [r.heldout_auc[m] for r in self.rows]
            out[m] = {"mean_auc": float(np.mean(scores)) if scores else 0.0,
                      "median_words": float(np.median([len(r.labels[m].split()) for r in self.rows])) if self.rows
                      else 0.0}
        for other in self.METHODS[1:]:
            wins = sum(r.heldout_auc["aim"] > r.heldout_auc[other] + 1e-9 for r in self.rows)
            losses = sum(r.heldout_auc["aim"] < r.heldout_auc[other] - 1e-9 for r in self.rows)
            out[f"aim_vs_{other}"] = {"wins": wins, "losses": losses, "ties": len(self.rows) - wins - losses,
                                      "sign_test_p": sign_test(wins, losses)}
        out["forced"] = sum(r.forced for r in self.rows)
        return out


def heldout_auc(label: str, acts: np.ndarray, classes: list[int | None], tax: Taxonomy) -> tuple[float, int]:
    """AUC of the unit on held-out photos the label predicts (true class under its synsets) vs the rest."""
    from aim_agent.scientist.evidence import rank_auc

    under: set[int] = set()
    for w in label_synsets(label, tax):
        under |= tax.classes_under(w)
    pos = [float(a) for a, c in zip(acts, classes, strict=True) if c is not None and c in under]
    neg = [float(a) for a, c in zip(acts, classes, strict=True) if c is not None and c not in under]
    return (rank_auc(pos, neg) if pos else 0.5), len(pos)


def evaluate_hidden(layer: str, n: int, seed: int, runs_dir: Path, cache_dir: Path, *, mode: str = "tools",
                    max_rounds: int = 6, say: Say = lambda _: None) -> HiddenEvaluation:
    """(b): ``n`` seeded random units of ``layer``, interpreted on the discovery half, scored on the held-out half."""
    from aim_agent.exemplars import resolve_dataset
    from aim_imagenet.photos import PhotoView

    tax = taxonomy()
    discovery = resolve_dataset("imagenet-sample-discovery")
    heldout = resolve_dataset("imagenet-sample-heldout")
    _, d_acts = folder_activations(MODEL, layer, discovery.root, cache_dir=cache_dir, say=say)
    h_files, h_acts = folder_activations(MODEL, layer, heldout.root, cache_dir=cache_dir, say=say)
    live = [u for u in range(d_acts.shape[1]) if float(d_acts[:, u].std()) > 1e-6]
    units = sorted(random.Random(seed).sample(live, min(n, len(live))))
    pool, names = _described(discovery, cache_dir)
    pool_terms = [item.terms for item in pool.items]
    runs = []
    for k, unit in enumerate(units, 1):
        run = run_unit(layer, unit, "imagenet-sample-discovery", runs_dir, mode=mode, max_rounds=max_rounds, say=say)
        runs.append(run)
        say(f"{layer} {k}/{len(units)}: unit {unit} -> {run.label!r} ({run.seconds:.0f} s)")
    # only now, after every run of the layer: the held-out photos' true classes
    labels = PhotoView(heldout.root.parent).labels()
    classes = [tax.index(labels[f].wnid) if f in labels and labels[f].wnid else None for f in h_files]
    evaluation = HiddenEvaluation(layer=layer, seed=seed)
    for unit, run in zip(units, runs, strict=True):
        named = {"aim": run.label, "exemplar_only": exemplar_only(run.exemplar_descriptions, run.exemplar_activations),
                 "most_correlated": most_correlated(pool_terms, d_acts[:, unit], names)}
        scored = {m: heldout_auc(x, h_acts[:, unit], classes, tax) for m, x in named.items()}
        evaluation.rows.append(HiddenRow(
            unit=unit, labels=named, heldout_auc={m: round(s[0], 4) for m, s in scored.items()},
            predicted={m: s[1] for m, s in scored.items()}, confidence=run.confidence, forced=run.forced,
            seconds=run.seconds))
    return evaluation
