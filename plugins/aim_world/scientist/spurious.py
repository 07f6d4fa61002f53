"""The offline scientist's answer to MAIA's spurious-unit question: is a unit SELECTIVE (one class, robustly
across the training environments) or SPURIOUS (several classes, or something that is not the class)?

The experiment is MAIA's, kept inside the training domain the question names: every class drawn on every
training environment and every environment alone, :data:`RENDERS` renders each (fresh poses, sizes and
places). Nothing here knows which environment went with which class in training.

The criterion compares effects with the unit's own render-to-render spread (the pooled standard deviation
within prompts), so it means the same on units of any scale:

- the unit's class is the one with the largest mean response over the environments;
- on **every** environment, the class must beat every other class drawn there *and* the environment alone,
  each by at least :data:`Z` standard errors of a difference of two means (``Z * sd * sqrt(2 / RENDERS)``);
- SELECTIVE when it does: one class drives the unit on every environment, beyond what render noise explains;
  SPURIOUS otherwise (MAIA: "if you are ever unsure, lean towards SPURIOUS").

Chosen on development seeds (``aim eval spurious --seed 101/102/103``), never on the reported ones; the
alternatives tried there are listed in docs/evaluation-maia.md.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from aim_agent.eval.tasks import Observation, TaskAnswer, TaskQuestion

RENDERS = 8  # renders per prompt: enough for a standard error; a prompt set is rendered once per seed
Z = 2.0  # standard errors a class must stand out by, on every environment


def on(environment: str) -> str:
    return f"on {environment}"


@dataclass
class Grid:
    """The unit's responses: each class on each environment, and each environment alone (one value a render)."""

    classes: tuple[str, ...]
    environments: tuple[str, ...]
    cells: dict[tuple[str, str], list[float]]
    alone: dict[str, list[float]]

    def spread(self) -> float:
        """Pooled standard deviation within prompts: how much renders of one prompt differ."""
        groups = [v for v in (*self.cells.values(), *self.alone.values()) if len(v) > 1]
        if not groups:
            return 0.0
        return math.sqrt(statistics.fmean(statistics.variance(v) for v in groups))


def measure(question: TaskQuestion, renders: int = RENDERS) -> tuple[Grid, list[Observation]]:
    """Render classes x environments and environments alone ``renders`` times; the unit's response to each."""
    classes, environments = question.classes, question.domain or ("plain",)
    cells = {(c, e): f"a {c} {on(e)}" for c in classes for e in environments}
    alone = {e: f"a {e}" for e in environments}
    prompts = [*cells.values(), *alone.values()]
    values: dict[str, list[float]] = {p: [] for p in prompts}
    evidence: list[Observation] = []
    for seed in range(renders):
        images = question.generate(prompts, seed)
        acts = question.system.activations(images).activations
        for prompt, image, act in zip(prompts, images, acts, strict=True):
            values[prompt].append(float(act))
            if seed == 0:
                evidence.append(Observation(prompt, round(float(act), 4), image))
    grid = Grid(tuple(classes), tuple(environments), {k: values[p] for k, p in cells.items()},
                {e: values[p] for e, p in alone.items()})
    return grid, evidence


def judge(grid: Grid) -> TaskAnswer:
    """SELECTIVE or SPURIOUS from the measured grid (module docstring)."""
    mean = {k: statistics.fmean(v) for k, v in grid.cells.items()}
    alone = {e: statistics.fmean(v) for e, v in grid.alone.items()}
    by_class = {c: statistics.fmean(mean[c, e] for e in grid.environments) for c in grid.classes}
    best = max(grid.classes, key=lambda c: by_class[c])
    renders = min(len(v) for v in grid.cells.values())
    need = Z * grid.spread() * math.sqrt(2 / max(renders, 1))
    margins: dict[str, tuple[float, str]] = {}
    for e in grid.environments:
        rivals = {**{c: mean[c, e] for c in grid.classes if c != best}, f"{e} alone": alone[e]}
        rival = max(rivals, key=lambda r: rivals[r])
        margins[e] = (mean[best, e] - rivals[rival], rival)
    weak = {e: m for e, m in margins.items() if not m[0] > need}
    shown = ", ".join(f"{e} +{m:.2f} over {r}" for e, (m, r) in margins.items())
    if weak:
        why = "; ".join(f"on {e} it is only {m:+.2f} over {r}" for e, (m, r) in weak.items())
        return TaskAnswer("SPURIOUS", f"{best} does not stand out on every environment ({why}; needs more than "
                          f"{need:.2f}, {Z:g} standard errors of the render spread)", evidence=[])
    return TaskAnswer("SELECTIVE", f"{best} beats every other class and the environment alone on every environment "
                      f"({shown}; needs more than {need:.2f}, {Z:g} standard errors of the render spread)",
                      selective_for=best, evidence=[])


def answer_spurious(question: TaskQuestion) -> TaskAnswer:
    """Measure classes x environments and environments alone; judge them (module docstring)."""
    grid, evidence = measure(question)
    answer = judge(grid)
    answer.evidence = evidence
    return answer
