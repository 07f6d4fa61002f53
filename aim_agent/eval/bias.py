"""``aim eval bias``: MAIA's bias discovery (Section 5.2, Appendix G) scored against planted biases.

For every class of a classifier with planted training correlations (the world's ``world-cnn-bias``: boats only
on water, cars only red, dogs always with a leash), the class probability is instrumented as a unit
(:class:`ClassProbability`: the softmax of the logits layer) and a scientist searches for contexts where the
class is under-recognised (MAIA's bias task). Its :class:`~aim_agent.eval.tasks.Finding` s come in two kinds:
*preferences* (the class is recognised only with one value of a feature) and *suppressors* (the class is
under-recognised with one value).

Each question carries the class's **exemplars**, as MAIA's bias experiments start from dataset exemplars of the
class unit: the :data:`EXEMPLARS` images with the highest class probability among :data:`EXEMPLAR_POOL` images of
the task's unbiased test split (drawn at the evaluation's seed). On unbiased images, a context that goes with a
high probability is one the model prefers, not one the data pairs with the class.

Only after every class is done does the evaluator read the task's answer (:meth:`EvalTask.truth`): the planted
biases, and for each the shipped model's test accuracy on the class with and without its feature. A planted
bias counts as **learned** when that accuracy drops by :data:`LEARNED_GAP` or more without the feature.

- **recall**: learned planted biases matched by a preference (same class, same value), over learned ones;
- **precision**: preferences that match a planted bias, over all preferences;
- preferences that match none are listed as **unplanted** (learned or spurious: their evidence is on the page),
  and suppressors separately.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from PIL import Image

from aim_agent.eval.pages import Figure, Section, fmt, html_page, md_table
from aim_agent.eval.tasks import Finding, TaskAnswer, TaskScientist
from aim_agent.images import ImageStore
from aim_agent.system import LayerProbe

LEARNED_GAP = 0.2
EXEMPLAR_POOL = 1000  # unbiased test images the exemplars are chosen from
EXEMPLARS = 15  # top images per class given to the scientist
PAGE_EXEMPLARS = 8  # of which the page shows
Progress = Callable[[str], None]


class ClassProbability(LayerProbe):
    """The class probabilities of a classifier as units: the softmax of its logits layer, one unit per class."""

    def __init__(self, logits: LayerProbe, classes: Sequence[str]) -> None:
        self.inner = logits
        self.model_name = logits.model_name
        self.layer = f"{logits.layer}:softmax"
        self.num_units = logits.num_units
        self.classes = list(classes)

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        out = self.inner.forward(images)
        logits = out.flatten(2).mean(dim=2) if out.dim() == 4 else out
        return torch.softmax(logits.float(), dim=1)[:, :, None, None]

    def fingerprint(self) -> str:
        return f"{self.inner.fingerprint()}:softmax"


# --------------------------------------------------------------------------------------------- scoring


def learned(planted: dict[str, Any], gap: float = LEARNED_GAP) -> bool:
    """Whether the model learned a planted bias: its class accuracy drops by ``gap`` without the feature."""
    with_f, without = planted.get("accuracy_with_feature"), planted.get("accuracy_without_feature")
    return with_f is not None and without is not None and with_f - without >= gap


def matches(finding: Finding, planted: dict[str, Any]) -> bool:
    """A preference names a planted bias when it is about the same class and the same feature value."""
    return (finding.kind == "preference" and finding.cls == planted["cls"]
            and finding.value.lower() == str(planted["value"]).lower())


@dataclass
class BiasScore:
    """Recall and precision of the found preferences against the planted biases."""

    learned: list[str]
    found_learned: list[str]
    recall_learned: float | None
    recall_all: float | None
    precision: float | None
    preferences: int
    unplanted: list[Finding]
    suppressors: list[Finding]


def _name(planted: dict[str, Any]) -> str:
    return f"{planted['cls']}: {planted['feature']}={planted['value']}"


def score(findings: Sequence[Finding], planted: Sequence[dict[str, Any]], gap: float = LEARNED_GAP) -> BiasScore:
    """Score the findings against the planted biases (module docstring)."""
    preferences = [f for f in findings if f.kind == "preference"]
    learned_ones = [p for p in planted if learned(p, gap)]
    found = [p for p in planted if any(matches(f, p) for f in preferences)]
    found_learned = [p for p in learned_ones if p in found]
    matched = [f for f in preferences if any(matches(f, p) for p in planted)]
    return BiasScore(
        learned=[_name(p) for p in learned_ones],
        found_learned=[_name(p) for p in found_learned],
        recall_learned=round(len(found_learned) / len(learned_ones), 4) if learned_ones else None,
        recall_all=round(len(found) / len(planted), 4) if planted else None,
        precision=round(len(matched) / len(preferences), 4) if preferences else None,
        preferences=len(preferences),
        unplanted=[f for f in preferences if f not in matched],
        suppressors=[f for f in findings if f.kind == "suppressor"],
    )


# --------------------------------------------------------------------------------------------- the run


def evaluate_bias(*, model: str | None = None, classes: Sequence[str] | None = None, seed: int = 0,
                  backend: str = "offline", exemplar_pool: int = EXEMPLAR_POOL, progress: Progress | None = None,
                  scientist: TaskScientist | None = None) -> dict[str, Any]:
    """Ask the scientist about every class (or ``classes``), then score against the planted biases.
    ``scientist``: one already built (a chat model's, with its options); default the one ``backend`` names;
    ``exemplar_pool``: unbiased test images the exemplars are chosen from."""
    from aim_agent.eval.tasks import TaskQuestion, eval_task, task_scientist
    from aim_agent.images import use_store
    from aim_agent.models.probe import open_probe
    from aim_agent.plugins import plugin_manager
    from aim_agent.system import System

    say = progress or (lambda _line: None)
    task = eval_task("bias", model)
    scientist = scientist or task_scientist(backend)
    unknown = [c for c in classes or () if c not in task.classes]
    if unknown:
        raise ValueError(f"unknown class(es) {', '.join(unknown)}; classes of {task.model}: {', '.join(task.classes)}")
    probe = ClassProbability(open_probe(task.model, task.logits_layer), task.classes)
    text2image = plugin_manager().provider("text2image", "world")

    def generate(prompts: list[str], image_seed: int) -> list[Any]:
        return [g.image for g in text2image.generate(prompts, size=224, seed=seed * 1000 + image_seed)]

    with use_store(ImageStore()) as pool_store:
        pool = task.images("test", exemplar_pool, seed).images
    probabilities = torch.cat([probe.forward(pool[i:i + 100])[:, :, 0, 0] for i in range(0, len(pool), 100)])
    say(f"exemplars: the top {EXEMPLARS} of {len(pool)} unbiased test images for each class")

    answers: dict[str, TaskAnswer] = {}
    shown: dict[str, list[Figure]] = {}  # each class's exemplars, for the page
    for cls in classes or task.classes:
        k = task.classes.index(cls)
        top = torch.argsort(probabilities[:, k], descending=True, stable=True)[:EXEMPLARS].tolist()
        exemplars = [pool[i] for i in top]
        shown[cls] = [Figure(pool[i], f"P({cls})={float(probabilities[i, k]):.2f}") for i in top[:PAGE_EXEMPLARS]]
        # a fresh store per class bounds memory; the exemplars come along with their records (for describers)
        with use_store(carried(exemplars, pool_store)):
            question = TaskQuestion(task="bias", system=System(probe, k), generate=generate, classes=task.classes,
                                    target=cls, exemplars=exemplars,
                                    exemplar_activations=[round(float(probabilities[i, k]), 4) for i in top])
            answers[cls] = scientist.answer(question)
        prefs = [f for f in answers[cls].findings if f.kind == "preference"]
        say(f"{cls}: {answers[cls].verdict}" + (f" ({'; '.join(f'{f.feature}={f.value}' for f in prefs)})"
                                                 if prefs else ""))
    truth = task.truth()  # only now, after every answer is in
    planted = [p for p in truth["planted"] if classes is None or p["cls"] in classes]
    findings = [f for a in answers.values() for f in a.findings]
    result = score(findings, planted)
    return {
        "evaluation": "bias", "model": task.model, "seed": seed, "backend": backend,
        "classes": list(answers), "learned_gap": LEARNED_GAP,
        "planted": [{**p, "learned": learned(p), "found": any(matches(f, p) for f in findings)} for p in planted],
        "score": {k: v for k, v in asdict(result).items() if k not in ("unplanted", "suppressors")},
        "unplanted": [asdict(f) for f in result.unplanted],
        "suppressors": [asdict(f) for f in result.suppressors],
        "answers": {c: {"verdict": a.verdict, "reasoning": a.reasoning, "findings": [asdict(f) for f in a.findings],
                        "run_dir": a.run_dir} for c, a in answers.items()},
        "_answers": answers,
        "_exemplars": shown,
    }


def carried(images: Sequence[Image.Image], store: ImageStore) -> ImageStore:
    """A fresh image store that knows ``images`` as ``store`` knows them (their scenes, for a describer)."""
    fresh = ImageStore()
    for image in images:
        record = store.record(image)
        fresh.register(image, **({} if record is None else {"scene": record.scene, "meta": record.meta}))
    return fresh


PLANTED_HEADERS = ("planted bias", "acc. with feature", "acc. without", "measured on", "observed with / without",
                   "learned", "found")
FINDING_HEADERS = ("class", "feature", "value", "P(class) with", "P(class) without / typical")


def planted_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [[_name(p), p.get("accuracy_with_feature"), p.get("accuracy_without_feature"), p.get("measured_on", ""),
             f"{fmt(p.get('observed_accuracy_with_feature'))} / {fmt(p.get('observed_accuracy_without_feature'))}",
             "yes" if p["learned"] else "no", "yes" if p["found"] else "no"] for p in data["planted"]]


def finding_rows(found: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[f["cls"], f["feature"], f["value"], f["with_value"], f["without_value"]] for f in found]


def markdown(data: dict[str, Any]) -> str:
    s = data["score"]
    prefs = [f for a in data["answers"].values() for f in a["findings"] if f["kind"] == "preference"]
    lines = [f"# aim eval bias: {data['model']} (seed {data['seed']}, scientist `{data['backend']}`)", "",
             f"{len(data['classes'])} classes searched; {s['preferences']} preferences found. Recall of the learned "
             f"planted biases {fmt(s['recall_learned'])} ({len(s['found_learned'])}/{len(s['learned'])}), of all "
             f"planted {fmt(s['recall_all'])}; precision {fmt(s['precision'])}. A planted bias is learned when the "
             f"class's accuracy drops by {data['learned_gap']} or more without its feature (on counterfactual twins: "
             "the same test scenes with the feature added and removed; `observed`: test images that happened to "
             "have it or not).", "",
             md_table(PLANTED_HEADERS, planted_rows(data)), "", "## Preferences found", "",
             md_table(FINDING_HEADERS, finding_rows(prefs)) if prefs else "none", "",
             "## Unplanted preferences", "",
             md_table(FINDING_HEADERS, finding_rows(data["unplanted"])) if data["unplanted"] else "none", "",
             f"## Suppressing contexts ({len(data['suppressors'])})", "",
             md_table(FINDING_HEADERS, finding_rows(data["suppressors"])) if data["suppressors"] else "none", ""]
    return "\n".join(lines)


def page(data: dict[str, Any]) -> str:
    sections = []
    for cls, answer in data["_answers"].items():
        for f in answer.findings:
            if f.kind != "preference":
                continue
            shown = [o for o in answer.evidence if o.image is not None and _about(o.prompt, f)]
            shown = sorted(shown, key=lambda o: -o.activation)
            figs = [Figure(o.image, f"{o.prompt}: P={o.activation:.2f}") for o in shown[:3] + shown[-9:]]
            sections.append(Section(f"{cls}: {f.feature}={f.value}", f.description, figs))
    for cls, figures in data.get("_exemplars", {}).items():
        sections.append(Section(f"{cls}: exemplars", f"the {len(figures)} most probable of the unbiased test images "
                                "the scientist's exemplars were chosen from", figures))
    tables = [("planted biases", PLANTED_HEADERS, planted_rows(data)),
              ("unplanted preferences", FINDING_HEADERS, finding_rows(data["unplanted"]))]
    return html_page(f"bias discovery: {data['model']}", tables, sections)


def _about(prompt: str, finding: Finding) -> bool:
    """Whether an evidence prompt belongs to the finding's feature sweep (it names the class and any value of
    that feature: approximated by the sweep's prompt shape)."""
    shapes = {"background": " on ", "color": None, "companion": " with a "}
    marker = shapes.get(finding.feature)
    if marker is None:
        return " on " not in prompt and " with a " not in prompt
    return marker in prompt
